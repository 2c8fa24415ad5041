-- A notice about an order (paid, OXXO voucher, needs attention, link expired)
-- that could not be sent: outside Meta's 24 h window without an approved
-- template. Recorded as `skipped` with the reason, never dropped silently.
alter table whatsapp_messages drop constraint whatsapp_messages_status_check;
alter table whatsapp_messages add constraint whatsapp_messages_status_check
    check (status in ('received', 'queued', 'sent', 'failed', 'skipped'));
