-- An SMTP provider's DKIM signing key (RSA, PKCS#1 PEM), sealed like the
-- credentials (AES-256-GCM, bound to tenant and provider); its domain and
-- selector are in the settings. NULL: mail goes out unsigned.
ALTER TABLE providers ADD COLUMN dkim_key bytea;
