-- The catalog's version: bumped in the same transaction as any change the
-- quote parser reads (a product added or removed; its sku, name, aliases,
-- price or currency changed), so every node sees a stale cached quote index
-- with one cheap read. Stock changes do not bump it: orders move stock all
-- the time and quotes do not show it.
create table catalog_version (
    -- a single row
    id      boolean primary key default true check (id),
    version bigint not null default 0
);
insert into catalog_version default values;

create function bump_catalog_version() returns trigger language plpgsql as $$
begin
    update catalog_version set version = version + 1;
    return null;
end
$$;

create trigger products_bump_catalog_version
    after insert or delete or truncate on products
    for each statement execute function bump_catalog_version();

create trigger products_bump_catalog_version_on_update
    after update on products
    for each row
    when (old.sku is distinct from new.sku
          or old.name is distinct from new.name
          or old.aliases is distinct from new.aliases
          or old.price_minor is distinct from new.price_minor
          or old.currency is distinct from new.currency)
    execute function bump_catalog_version();
