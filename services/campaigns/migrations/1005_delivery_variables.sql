-- The values that filled a message's slots (`vars.*`, and the customer's name
-- as `name`): providers that send pre-approved templates (Aliyun SMS) take
-- these instead of the rendered text, and a re-submission must send the same.
ALTER TABLE deliveries ADD COLUMN variables jsonb NOT NULL DEFAULT '{}';
