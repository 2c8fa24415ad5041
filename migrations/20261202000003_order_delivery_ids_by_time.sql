-- Delivery ids become time-ordered UUIDs (version 7, RFC 9562), like every
-- other id in Relevo: the deliveries list pages newest first by id, which a
-- random gen_random_uuid() id made a random order.
--
-- The fan-out trigger creates deliveries in SQL, so the id is made here rather
-- than in Rust. Postgres 18 has uuidv7(); this is the same layout for older
-- servers: 48 bits of Unix milliseconds, then the sub-millisecond fraction in
-- the 12 bits after the version (RFC 9562 §6.2, method 3), so ids made one
-- after another, even within a millisecond, sort in that order. The remaining
-- 62 bits stay random.
--
-- Deliveries created before this migration keep their random ids.
create function gen_uuid_v7() returns uuid language plpgsql volatile as $$
declare
    micros bigint := (extract(epoch from clock_timestamp()) * 1000000)::bigint;
    fraction int := ((micros % 1000) * 4096 / 1000)::int;
    id bytea := uuid_send(gen_random_uuid());
begin
    id := overlay(id placing substring(int8send(micros / 1000) from 3) from 1 for 6);
    -- version 7 in the high nibble, then the top 4 bits of the fraction
    id := set_byte(id, 6, (x'70'::int | (fraction >> 8)));
    id := set_byte(id, 7, fraction & 255);
    -- byte 8 keeps gen_random_uuid()'s RFC variant bits
    return encode(id, 'hex')::uuid;
end $$;

alter table deliveries alter column id set default gen_uuid_v7();
