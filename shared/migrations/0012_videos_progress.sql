-- Videos, verified watch progress and the daily earning cap.
--
-- The rules that decide how much watch time is credited live in one SECURITY DEFINER function,
-- progress_heartbeat(): the application role can read progress but never write it directly, so no
-- code path can credit time the rules did not allow. A heartbeat is one statement and one round
-- trip; only the heartbeat that completes a video opens a transaction for the reward (see
-- docs/progress.md).

-- The catalogue. Staff create videos (admin issue); deactivating hides a video without losing the
-- progress that points at it.
CREATE TABLE videos (
    id                 UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    -- a stable natural key for seeded/imported videos, so loading a catalogue twice is a no-op
    slug               TEXT UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]{0,79}$'),
    title              TEXT NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    description        TEXT NOT NULL DEFAULT '' CHECK (length(description) <= 2000),
    media_url          TEXT CHECK (length(media_url) <= 2000),
    thumbnail_url      TEXT CHECK (length(thumbnail_url) <= 2000),
    -- at most a day long: positions are bounded by the duration, so this bounds them too
    duration_seconds   INTEGER NOT NULL CHECK (duration_seconds > 0 AND duration_seconds <= 86400),
    -- micro-dollars, like the ledger; $1,000 per video at most (a fat-finger guard)
    reward_micros      BIGINT NOT NULL CHECK (reward_micros >= 0 AND reward_micros <= 1000000000),
    required_watch_pct SMALLINT NOT NULL DEFAULT 90 CHECK (required_watch_pct BETWEEN 1 AND 100),
    active             BOOLEAN NOT NULL DEFAULT true,
    created_by         UUID REFERENCES users (id),
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- The catalogue lists active videos newest first.
CREATE INDEX idx_videos_active ON videos (active, created_at DESC, id);

GRANT SELECT ON videos TO earnpay_app;
-- Staff create and edit videos through the admin function (same application role).
GRANT INSERT, UPDATE (title, description, media_url, thumbnail_url, reward_micros, required_watch_pct, active, updated_at)
    ON videos TO earnpay_app;

-- Watch progress, permanent per user and video.
--
-- Indexes of the product document: idx_video_progress_user_video (user_id, video_id) IS the
-- primary key below (a second identical index would only slow writes); idx_video_progress_user_id
-- is subsumed by it (user_id is its leading column); idx_video_progress_completed exists, partial.
-- Columns a heartbeat changes (position, credited time, heartbeat time, sequence) are in no index,
-- and the fill factor leaves room on each page, so heartbeats are HOT updates: no index writes.
CREATE TABLE video_progress (
    user_id           UUID NOT NULL REFERENCES users (id),
    video_id          UUID NOT NULL REFERENCES videos (id),
    position_seconds  NUMERIC(10, 3) NOT NULL CHECK (position_seconds >= 0),
    credited_seconds  NUMERIC(10, 3) NOT NULL DEFAULT 0 CHECK (credited_seconds >= 0),
    -- the client's playback session and its heartbeat counter: client_seq must grow within a session
    session_id        UUID,
    last_client_seq   BIGINT NOT NULL CHECK (last_client_seq >= 0),
    playing           BOOLEAN NOT NULL,
    heartbeats        INTEGER NOT NULL DEFAULT 1 CHECK (heartbeats >= 0),
    started_at        TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    last_heartbeat_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    completed_at      TIMESTAMPTZ,
    -- what completion credited (after the daily cap) and what the cap withheld
    reward_micros     BIGINT CHECK (reward_micros >= 0),
    withheld_micros   BIGINT CHECK (withheld_micros >= 0),
    reward_entry_id   BIGINT,
    PRIMARY KEY (user_id, video_id),
    CHECK ((completed_at IS NULL) = (reward_micros IS NULL) AND (completed_at IS NULL) = (withheld_micros IS NULL)),
    CHECK (reward_entry_id IS NULL OR completed_at IS NOT NULL)
) WITH (fillfactor = 80);

-- "Continue watching": a user's videos, most recently started first (keyset pagination).
CREATE INDEX idx_video_progress_user_started ON video_progress (user_id, started_at DESC, video_id DESC);
-- Completions (analytics, support): only completed rows, so heartbeats never touch this index.
CREATE INDEX idx_video_progress_completed ON video_progress (completed_at, user_id) WHERE completed_at IS NOT NULL;

GRANT SELECT ON video_progress TO earnpay_app;
-- The reward's ledger entry is attached after ledger.post() in the completing transaction.
GRANT UPDATE (reward_entry_id) ON video_progress TO earnpay_app;

-- One stream at a time: the stream (video and session) of each user's newest accepted heartbeat.
-- A heartbeat credits time only when the user's previous accepted heartbeat was on the same
-- stream, so the intervals credited across all of a user's videos never overlap in wall-clock time.
-- The row is also the per-user lock that serialises a user's heartbeats.
CREATE TABLE active_streams (
    user_id           UUID PRIMARY KEY REFERENCES users (id),
    video_id          UUID NOT NULL REFERENCES videos (id),
    session_id        UUID,
    last_heartbeat_at TIMESTAMPTZ NOT NULL
) WITH (fillfactor = 80);

GRANT SELECT ON active_streams TO earnpay_app;

-- The daily earning cap: video rewards credited per user and UTC day. The row is updated with the
-- completion, under its row lock, so two completions at once cannot both slip under the cap, and
-- the cap never needs a sum over the ledger.
CREATE TABLE daily_video_earnings (
    user_id         UUID NOT NULL REFERENCES users (id),
    day             DATE NOT NULL,
    credited_micros BIGINT NOT NULL DEFAULT 0 CHECK (credited_micros >= 0),
    withheld_micros BIGINT NOT NULL DEFAULT 0 CHECK (withheld_micros >= 0),
    completions     INTEGER NOT NULL DEFAULT 0 CHECK (completions >= 0),
    PRIMARY KEY (user_id, day)
);

GRANT SELECT ON daily_video_earnings TO earnpay_app;

-- What the cap withheld, kept on record (not lost, not paid automatically): support may grant it
-- later as an `adjustment` ledger entry and mark the row resolved (docs/progress.md).
CREATE TABLE withheld_rewards (
    id                 BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id            UUID NOT NULL REFERENCES users (id),
    video_id           UUID NOT NULL REFERENCES videos (id),
    day                DATE NOT NULL,
    reward_micros      BIGINT NOT NULL CHECK (reward_micros > 0),
    withheld_micros    BIGINT NOT NULL CHECK (withheld_micros > 0 AND withheld_micros <= reward_micros),
    cap_micros         BIGINT NOT NULL CHECK (cap_micros >= 0),
    reason             TEXT NOT NULL CHECK (reason IN ('daily_cap')),
    status             TEXT NOT NULL DEFAULT 'withheld' CHECK (status IN ('withheld', 'granted', 'dismissed')),
    resolved_at        TIMESTAMPTZ,
    resolved_by        UUID REFERENCES users (id),
    resolution_entry_id BIGINT,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    -- a video completes once per user, so it is withheld at most once
    UNIQUE (user_id, video_id),
    CHECK ((status = 'withheld') = (resolved_at IS NULL))
);
CREATE INDEX idx_withheld_rewards_open ON withheld_rewards (created_at) WHERE status = 'withheld';

GRANT SELECT ON withheld_rewards TO earnpay_app;
-- Support resolves withheld rewards through the admin function.
GRANT UPDATE (status, resolved_at, resolved_by, resolution_entry_id) ON withheld_rewards TO earnpay_app;

-- The heartbeat. Errors (SQLSTATE): EP101 unknown or inactive video, EP102 position beyond the
-- video's duration.
--
-- Crediting rules, all measured on the database's clock (clock_timestamp()):
--   * stale: client_seq <= the last one of the same (user, video, session): nothing is written;
--   * the first heartbeat of a stream (new video, new session, or the user's previous heartbeat
--     was on another stream) is a baseline: position and time recorded, nothing credited;
--   * otherwise the credit is the forward movement of the position, bounded by the wall-clock time
--     since the previous heartbeat plus a tolerance of 10 % (at most 2 s), at most 60 s per
--     heartbeat, and only when the previous heartbeat said the video was playing. Seeking back
--     moves the position and credits nothing; seeking forward credits no more than the time that
--     passed.
-- Completion when credited time reaches ceil(duration * pct / 100). With p_complete = false the
-- function refuses to complete: it writes nothing and returns 'completion_due', and the caller
-- repeats the call with p_complete = true inside the transaction that posts the reward (so an
-- ordinary heartbeat is one autocommitted statement). With p_complete = true it marks the
-- completion, applies the daily cap (p_daily_cap micros per UTC day; NULL = no cap), records what
-- the cap withheld, and returns the amount to credit.
CREATE FUNCTION progress_heartbeat(
    p_user_id UUID, p_video_id UUID, p_position NUMERIC, p_playing BOOLEAN, p_client_seq BIGINT,
    p_session_id UUID, p_complete BOOLEAN, p_daily_cap BIGINT
) RETURNS TABLE (
    status TEXT, credited_now NUMERIC, position_seconds NUMERIC, credited_seconds NUMERIC,
    required_seconds INTEGER, duration_seconds INTEGER, completed_at TIMESTAMPTZ,
    reward_micros BIGINT, withheld_micros BIGINT, reward_entry_id BIGINT, last_heartbeat_at TIMESTAMPTZ
)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    v RECORD;
    s RECORD;
    p video_progress%ROWTYPE;
    v_now TIMESTAMPTZ := clock_timestamp();
    v_required INTEGER;
    v_same_stream BOOLEAN;
    v_elapsed NUMERIC;
    v_allowed NUMERIC;
    v_delta NUMERIC := 0;
    v_credited NUMERIC;
    v_day DATE;
    v_granted BIGINT;
    v_withheld BIGINT;
    v_status TEXT;
    v_fresh BOOLEAN := false;
BEGIN
    SELECT x.duration_seconds, x.reward_micros, x.required_watch_pct INTO v
      FROM videos x WHERE x.id = p_video_id AND x.active;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no such video %', p_video_id USING ERRCODE = 'EP101';
    END IF;
    IF p_position > v.duration_seconds THEN
        RAISE EXCEPTION 'position % is beyond the duration %', p_position, v.duration_seconds USING ERRCODE = 'EP102';
    END IF;
    v_required := ceil(v.duration_seconds * v.required_watch_pct / 100.0)::int;

    -- The per-user lock first, then the progress row: always in this order, so no deadlocks.
    SELECT a.video_id, a.session_id INTO s FROM active_streams a WHERE a.user_id = p_user_id FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO active_streams (user_id, video_id, session_id, last_heartbeat_at)
        VALUES (p_user_id, p_video_id, p_session_id, v_now)
        ON CONFLICT (user_id) DO NOTHING;
        SELECT a.video_id, a.session_id INTO s FROM active_streams a WHERE a.user_id = p_user_id FOR UPDATE;
        v_fresh := true;  -- no previous stream to continue: this heartbeat is a baseline
    END IF;

    SELECT * INTO p FROM video_progress x WHERE x.user_id = p_user_id AND x.video_id = p_video_id FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO video_progress AS x (user_id, video_id, position_seconds, session_id, last_client_seq, playing,
                                         started_at, last_heartbeat_at)
        VALUES (p_user_id, p_video_id, p_position, p_session_id, p_client_seq, p_playing, v_now, v_now);
        UPDATE active_streams a SET video_id = p_video_id, session_id = p_session_id, last_heartbeat_at = v_now
         WHERE a.user_id = p_user_id;
        RETURN QUERY SELECT 'started'::text, 0::numeric, p_position, 0::numeric, v_required, v.duration_seconds,
                            NULL::timestamptz, NULL::bigint, NULL::bigint, NULL::bigint, v_now;
        RETURN;
    END IF;

    -- A replayed or out-of-order heartbeat of the same session: ignored entirely.
    IF p.session_id IS NOT DISTINCT FROM p_session_id AND p_client_seq <= p.last_client_seq THEN
        RETURN QUERY SELECT 'stale'::text, 0::numeric, p.position_seconds, p.credited_seconds, v_required, v.duration_seconds,
                            p.completed_at, p.reward_micros, p.withheld_micros, p.reward_entry_id, p.last_heartbeat_at;
        RETURN;
    END IF;

    v_same_stream := NOT v_fresh AND s.video_id = p_video_id AND s.session_id IS NOT DISTINCT FROM p_session_id
                     AND p.session_id IS NOT DISTINCT FROM p_session_id;
    IF v_same_stream AND p.playing AND p.completed_at IS NULL AND p_position > p.position_seconds THEN
        v_elapsed := greatest(extract(epoch FROM v_now - p.last_heartbeat_at), 0);
        v_allowed := least(v_elapsed + least(v_elapsed * 0.1, 2), 60);
        v_delta := round(least(p_position - p.position_seconds, v_allowed), 3);
    END IF;
    v_credited := least(p.credited_seconds + v_delta, v.duration_seconds);
    v_delta := v_credited - p.credited_seconds;

    IF p.completed_at IS NULL AND v_credited >= v_required THEN
        IF NOT p_complete THEN
            RETURN QUERY SELECT 'completion_due'::text, v_delta, p_position, v_credited, v_required, v.duration_seconds,
                                NULL::timestamptz, NULL::bigint, NULL::bigint, NULL::bigint, p.last_heartbeat_at;
            RETURN;
        END IF;
        -- The cap: credit what is left of today's allowance, withhold (and record) the rest.
        v_day := (v_now AT TIME ZONE 'UTC')::date;
        IF p_daily_cap IS NULL OR v.reward_micros = 0 THEN
            v_granted := v.reward_micros;
        ELSE
            INSERT INTO daily_video_earnings AS d (user_id, day) VALUES (p_user_id, v_day)
            ON CONFLICT (user_id, day) DO NOTHING;
            SELECT greatest(least(v.reward_micros, p_daily_cap - d.credited_micros), 0) INTO v_granted
              FROM daily_video_earnings d WHERE d.user_id = p_user_id AND d.day = v_day FOR UPDATE;
        END IF;
        v_withheld := v.reward_micros - v_granted;
        INSERT INTO daily_video_earnings AS d (user_id, day, credited_micros, withheld_micros, completions)
        VALUES (p_user_id, v_day, v_granted, v_withheld, 1)
        ON CONFLICT (user_id, day) DO UPDATE
           SET credited_micros = d.credited_micros + EXCLUDED.credited_micros,
               withheld_micros = d.withheld_micros + EXCLUDED.withheld_micros,
               completions = d.completions + 1;
        IF v_withheld > 0 THEN
            INSERT INTO withheld_rewards (user_id, video_id, day, reward_micros, withheld_micros, cap_micros, reason)
            VALUES (p_user_id, p_video_id, v_day, v.reward_micros, v_withheld, p_daily_cap, 'daily_cap');
        END IF;
        p.completed_at := v_now;
        p.reward_micros := v_granted;
        p.withheld_micros := v_withheld;
        v_status := 'completed';
    ELSIF v_delta > 0 THEN
        v_status := 'credited';
    ELSIF v_same_stream THEN
        v_status := 'accepted';
    ELSE
        v_status := 'stream_started';
    END IF;

    UPDATE video_progress x
       SET position_seconds = p_position, credited_seconds = v_credited, session_id = p_session_id,
           last_client_seq = p_client_seq, playing = p_playing, heartbeats = x.heartbeats + 1,
           last_heartbeat_at = v_now, completed_at = p.completed_at, reward_micros = p.reward_micros,
           withheld_micros = p.withheld_micros
     WHERE x.user_id = p_user_id AND x.video_id = p_video_id;
    UPDATE active_streams a SET video_id = p_video_id, session_id = p_session_id, last_heartbeat_at = v_now
     WHERE a.user_id = p_user_id;

    RETURN QUERY SELECT v_status, v_delta, p_position, v_credited, v_required, v.duration_seconds,
                        p.completed_at, p.reward_micros, p.withheld_micros, p.reward_entry_id, v_now;
END
$$;

REVOKE ALL ON FUNCTION progress_heartbeat(UUID, UUID, NUMERIC, BOOLEAN, BIGINT, UUID, BOOLEAN, BIGINT) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION progress_heartbeat(UUID, UUID, NUMERIC, BOOLEAN, BIGINT, UUID, BOOLEAN, BIGINT) TO earnpay_app;

-- A display string for micro-dollars, the same as functions.ledger.service.format_micros
-- (e.g. 2500 -> "$0.0025", 1500000 -> "$1.50"): exports build their JSON in the database.
-- Written so the planner inlines it into the export query (4x faster than a call per row): not
-- STRICT (the CASE body is not strict) and STABLE, not IMMUTABLE (to_char is only STABLE).
CREATE FUNCTION format_micros(p BIGINT) RETURNS TEXT
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN p < 0 THEN '-$' ELSE '$' END
        || to_char(abs(p) / 1000000, 'FM999,999,999,999,990') || '.'
        || CASE WHEN abs(p) % 10000 = 0 THEN lpad(((abs(p) % 1000000) / 10000)::text, 2, '0')
                ELSE rtrim(lpad((abs(p) % 1000000)::text, 6, '0'), '0') END
$$;
