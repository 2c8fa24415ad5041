-- Catalog, orders and their audit trail, the email outbox and the domain-event
-- outbox read by outbound webhooks.
create table products (
    sku         text primary key check (sku <> ''),
    name        text not null check (name <> ''),
    aliases     text[] not null default '{}',
    price_minor bigint not null check (price_minor >= 0),
    currency    char(3) not null,
    -- whatever the code does, stock never goes negative
    stock       integer not null check (stock >= 0),
    created_at  timestamptz not null default now(),
    updated_at  timestamptz not null default now()
);

create table stock_movements (
    id         bigint generated always as identity primary key,
    sku        text not null,
    delta      integer not null,
    reason     text not null,
    order_id   uuid,
    created_at timestamptz not null default now()
);
create index stock_movements_by_sku on stock_movements (sku, id);

create type order_status as enum (
    'pending_payment', 'awaiting_offline_payment', 'paid', 'fulfilled',
    'payment_failed', 'cancelled', 'refunded', 'needs_attention');

create table orders (
    id             uuid primary key,
    status         order_status not null default 'pending_payment',
    -- a refund that arrived before the payment it refunds (out-of-order delivery)
    refund_pending boolean not null default false,
    customer_email text not null,
    customer_name  text not null,
    customer_phone text,
    amount_minor   bigint not null check (amount_minor >= 0),
    currency       char(3) not null,
    -- the provider's payment id (Stripe PaymentIntent, Mercado Pago payment),
    -- to find the order from events that only carry it (charge.refunded)
    payment_ref    text,
    created_at     timestamptz not null default now(),
    updated_at     timestamptz not null default now()
);
create index orders_by_status on orders (status, id desc);
create index orders_by_payment_ref on orders (payment_ref) where payment_ref is not null;

create table order_items (
    order_id         uuid not null references orders (id) on delete cascade,
    line             integer not null,
    sku              text not null,
    name             text not null,
    quantity         integer not null check (quantity > 0),
    -- frozen at order creation
    unit_price_minor bigint not null check (unit_price_minor >= 0),
    primary key (order_id, line)
);

-- Every transition an event asked for, applied or ignored (and why).
create table order_transitions (
    id           bigint generated always as identity primary key,
    order_id     uuid not null references orders (id) on delete cascade,
    from_status  order_status not null,
    to_status    order_status,
    signal       text not null,
    applied      boolean not null,
    reason       text,
    event_id     uuid,
    at           timestamptz not null default now()
);
create index order_transitions_by_order on order_transitions (order_id, id);

create table emails (
    id         uuid primary key,
    order_id   uuid,
    to_address text not null,
    subject    text not null,
    kind       text not null,
    html       text not null,
    text_body  text not null,
    -- logged (no SMTP configured), queued, sent, failed
    status     text not null,
    created_at timestamptz not null default now(),
    sent_at    timestamptz
);
create index emails_by_created on emails (created_at desc, id desc);

-- Domain events, written in the transaction of the change they describe.
create table outbox_events (
    id         uuid primary key,
    type       text not null,
    payload    jsonb not null,
    created_at timestamptz not null default now()
);
create index outbox_events_by_created on outbox_events (created_at, id);
