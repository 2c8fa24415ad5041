-- Customers: one row per person, found by WhatsApp number or e-mail. Orders
-- reference one; an order needs an e-mail or a phone (WhatsApp orders have
-- only the number). Payment links: the hosted checkout a shopper pays an
-- order through (Stripe Checkout Session, Mercado Pago preference).

create table customers (
    id          uuid primary key default gen_uuid_v7(),
    -- WhatsApp number as Meta sends it (E.164 digits, no "+")
    wa_id       text unique,
    -- stored lowercased: one customer per address whatever its case
    email       text unique,
    name        text,
    phone       text,
    created_at  timestamptz not null default now(),
    updated_at  timestamptz not null default now(),
    check (wa_id is not null or email is not null)
);

alter table orders
    add column customer_id uuid references customers (id),
    add column quote_id uuid references quotes (id),
    alter column customer_email drop not null,
    add constraint orders_reach_the_customer check (customer_email is not null or customer_phone is not null);
create index orders_by_customer on orders (customer_id, id desc);
-- One order per confirmed quote.
create unique index orders_one_per_quote on orders (quote_id) where quote_id is not null;

-- Existing orders get their customer by e-mail.
insert into customers (email, name, phone, created_at)
select distinct on (lower(customer_email)) lower(customer_email), customer_name, customer_phone, created_at
  from orders where customer_email is not null
 order by lower(customer_email), created_at;
update orders o set customer_id = c.id from customers c where c.email = lower(o.customer_email);

create table payment_links (
    id           uuid primary key default gen_uuid_v7(),
    order_id     uuid not null references orders (id),
    -- stripe | mercadopago
    provider     text not null check (provider in ('stripe', 'mercadopago')),
    -- Checkout Session id (cs_…) or preference id
    provider_id  text not null,
    url          text not null,
    expires_at   timestamptz,
    created_at   timestamptz not null default now(),
    unique (provider, provider_id)
);
create index payment_links_by_order on payment_links (order_id, id desc);
