-- Cairn's metadata schema. Learned from upstream Praefect's, with three
-- changes: a write's intent is recorded before it is proxied
-- (write_intents), every primary change bumps a term that fences the old
-- primary, and bookkeeping rows are deleted once they are no longer needed.

-- Probed by `praefect check` inside a rolled-back transaction.
CREATE TABLE hello_world (id integer);

CREATE SEQUENCE repositories_repository_id_seq;

-- One row per repository of a virtual storage.
CREATE TABLE repositories (
    repository_id   bigint PRIMARY KEY,
    virtual_storage text   NOT NULL,
    relative_path   text   NOT NULL,
    replica_path    text   NOT NULL,
    -- Number of recorded writes; a replica at this generation is up to date.
    generation      bigint NOT NULL DEFAULT 0,
    "primary"       text,
    -- Incremented on every change of primary; carried by intents and votes.
    term            bigint NOT NULL DEFAULT 1,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (virtual_storage, relative_path),
    UNIQUE (virtual_storage, replica_path)
);
ALTER SEQUENCE repositories_repository_id_seq OWNED BY repositories.repository_id;

-- One row per replica that exists on a node.
CREATE TABLE storage_repositories (
    repository_id             bigint NOT NULL REFERENCES repositories ON DELETE CASCADE,
    storage                   text   NOT NULL,
    generation                bigint NOT NULL,
    verified_at               timestamptz,
    verification_leased_until timestamptz,
    PRIMARY KEY (repository_id, storage)
);

-- Which storages should hold a replica. No rows: every configured storage.
CREATE TABLE repository_assignments (
    repository_id bigint NOT NULL REFERENCES repositories ON DELETE CASCADE,
    storage       text   NOT NULL,
    PRIMARY KEY (repository_id, storage)
);

-- A write being proxied. Inserted before the request reaches a node and
-- deleted when its outcome is recorded; rows left by a router that died are
-- settled by the next router (see db::intents).
CREATE TABLE write_intents (
    id              bigserial PRIMARY KEY,
    repository_id   bigint NOT NULL REFERENCES repositories ON DELETE CASCADE,
    primary_storage text   NOT NULL,
    term            bigint NOT NULL,
    router          text   NOT NULL,
    method          text   NOT NULL,
    creates         boolean NOT NULL DEFAULT false,
    correlation_id  text   NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX write_intents_repository ON write_intents (repository_id);
CREATE INDEX write_intents_created ON write_intents (created_at);

-- Replication work: at most one job per (repository, target storage). A
-- write that arrives while its job runs sets `rerun`, so the job runs again
-- instead of a second row piling up.
CREATE TABLE replication_jobs (
    id              bigserial PRIMARY KEY,
    repository_id   bigint NOT NULL REFERENCES repositories ON DELETE CASCADE,
    virtual_storage text   NOT NULL,
    target_storage  text   NOT NULL,
    source_storage  text,
    change          text   NOT NULL CHECK (change IN ('update', 'delete_replica')),
    state           text   NOT NULL DEFAULT 'ready' CHECK (state IN ('ready', 'in_progress', 'failed')),
    rerun           boolean NOT NULL DEFAULT false,
    attempts        integer NOT NULL DEFAULT 0,
    not_before      timestamptz NOT NULL DEFAULT now(),
    lease_owner     text,
    lease_until     timestamptz,
    correlation_id  text NOT NULL DEFAULT '',
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (repository_id, target_storage)
);
CREATE INDEX replication_jobs_target ON replication_jobs (virtual_storage, target_storage, not_before);

-- Each router's latest health check of each node. Rows of routers that
-- stopped checking are deleted after an hour.
CREATE TABLE node_status (
    router                  text NOT NULL,
    virtual_storage         text NOT NULL,
    storage                 text NOT NULL,
    last_contact_attempt_at timestamptz NOT NULL,
    last_seen_active_at     timestamptz,
    PRIMARY KEY (router, virtual_storage, storage)
);
