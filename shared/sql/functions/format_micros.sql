-- format_micros: the current body (first made by 0012_videos_progress.sql).
-- shared/migrate.py applies this file after the migrations whenever it changed: change the
-- function here, never in a new migration.
-- A display string for micro-dollars, the same as functions.ledger.service.format_micros
-- (e.g. 2500 -> "$0.0025", 1500000 -> "$1.50"): exports build their JSON in the database.
-- Written so the planner inlines it into the export query (4x faster than a call per row): not
-- STRICT (the CASE body is not strict) and STABLE, not IMMUTABLE (to_char is only STABLE).
-- The usual amount (0 to $999.999999: no thousands separator) takes the first branch: integer
-- arithmetic and one text cast, about twice as fast per row as to_char and lpad (the whole-history
-- export formats two amounts per entry; bench/README.md). Larger and negative amounts take to_char.
CREATE OR REPLACE FUNCTION format_micros(p BIGINT) RETURNS TEXT
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN p >= 0 AND p < 1000000000
                THEN '$' || (p / 1000000)::text || '.'
                     || CASE WHEN p % 10000 = 0 THEN substr((p % 1000000 + 1000000)::text, 2, 2)
                             ELSE rtrim(substr((p % 1000000 + 1000000)::text, 2), '0') END
                ELSE CASE WHEN p < 0 THEN '-$' ELSE '$' END
                     || to_char(abs(p) / 1000000, 'FM999,999,999,999,990') || '.'
                     || CASE WHEN abs(p) % 10000 = 0 THEN lpad(((abs(p) % 1000000) / 10000)::text, 2, '0')
                             ELSE rtrim(lpad((abs(p) % 1000000)::text, 6, '0'), '0') END END
$$;
