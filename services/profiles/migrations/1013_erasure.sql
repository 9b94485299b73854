-- GDPR / PIPL erasure: when a customer's personal data was erased. The
-- record stays (deleted, emptied) so that transactions, spending and other
-- services' references keep their meaning.
ALTER TABLE customers ADD COLUMN erase_time timestamptz;
