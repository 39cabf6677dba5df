-- Restore drills: one row per rehearsal of recovery, with what it measured.
--
-- Locally (and in CI) a drill is pg_dump + pg_restore into a scratch database on the same server,
-- finished in one call. In Cloud SQL it is a point-in-time clone of the instance, which takes
-- longer than one function invocation may run (540 s): the row carries the drill from one
-- scheduled tick to the next (clone requested -> clone checked -> clone deleted), and is the
-- record of our measured recovery time. Only run_maintenance (the schema owner's rights) writes it.
CREATE TABLE restore_drills (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    mode           TEXT NOT NULL CHECK (mode IN ('dump_restore', 'pitr_clone')),
    source         TEXT NOT NULL CHECK (length(source) BETWEEN 1 AND 200),
    target         TEXT NOT NULL CHECK (length(target) BETWEEN 1 AND 200),
    point_in_time  TIMESTAMPTZ,
    phase          TEXT NOT NULL DEFAULT 'started'
                   CHECK (phase IN ('started', 'cloning', 'checking', 'deleting', 'done', 'failed')),
    operation      TEXT CHECK (length(operation) <= 300),
    ok             BOOLEAN,
    report         JSONB,
    error          TEXT CHECK (length(error) <= 2000),
    started_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at    TIMESTAMPTZ,
    CHECK ((phase IN ('done', 'failed')) = (finished_at IS NOT NULL)),
    CHECK (mode <> 'pitr_clone' OR point_in_time IS NOT NULL)
);
-- at most one clone drill in flight: a second scheduler tick resumes it instead of starting another
CREATE UNIQUE INDEX idx_restore_drills_one_open ON restore_drills (mode) WHERE mode = 'pitr_clone' AND phase NOT IN ('done', 'failed');
CREATE INDEX idx_restore_drills_started ON restore_drills (started_at DESC);

-- Operators read drill history with the owner's or a reporting role's rights; the app role has no need.
