-- Terminal documents (`ctx.terminals.publish`): each version an app published for the terminals of its scenes,
-- immutable, with the envelope signed once by the trust-list root at publication (yima_sdk.documents). Terminals
-- fetch their scene's app's rows; settlement re-prices offline rides with the `fares` version in force.

CREATE TABLE miniapp_terminal_documents (
    app_id         text NOT NULL REFERENCES miniapps (app_id),
    name           text NOT NULL,
    version        integer NOT NULL CHECK (version >= 1),
    effective_from timestamptz NOT NULL,
    content        bytea NOT NULL,                   -- the JSON the app published, as signed
    envelope       bytea NOT NULL,
    published_at   timestamptz NOT NULL,
    PRIMARY KEY (app_id, name, version)
);
