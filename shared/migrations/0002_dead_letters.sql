-- Messages an event function gave up on for good (malformed or impossible), with the reason.
-- They are also published to the subscription's dead-letter topic when Pub/Sub is enabled; this
-- table keeps them queryable next to the data they failed to change.
CREATE TABLE dead_letters (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source      TEXT NOT NULL CHECK (length(source) BETWEEN 1 AND 100),
    message_id  TEXT CHECK (length(message_id) <= 200),
    reason      TEXT NOT NULL CHECK (length(reason) <= 2000),
    code        TEXT NOT NULL CHECK (length(code) <= 100),
    payload     TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX idx_dead_letters_created_at ON dead_letters (created_at DESC);
CREATE INDEX idx_dead_letters_source ON dead_letters (source, created_at DESC);

GRANT SELECT, INSERT ON dead_letters TO earnpay_app;
