-- progress_heartbeat: the current body (first made by 0012_videos_progress.sql, changed by 0062_fair_watch_credit.sql;
-- 0072_heartbeat_rate_window.sql dropped the signature without p_max_hits).
-- shared/migrate.py applies this file after the migrations whenever it changed: change the
-- function here, never in a new migration.
--
-- p_max_hits: the per-user rate limit (requests per minute). The heartbeat counts in the user's
-- active_streams row, which it locks first and writes anyway: a user over the limit gets status
-- 'rate_limited' (rl_hits past p_max_hits, rl_retry_after seconds to the window's end) before the
-- video is even looked at, and nothing is written. NULL: not counted (the completing transaction
-- repeats a heartbeat already counted).
CREATE OR REPLACE FUNCTION progress_heartbeat(
    p_user_id UUID, p_video_id UUID, p_position NUMERIC, p_playing BOOLEAN, p_client_seq BIGINT,
    p_session_id UUID, p_complete BOOLEAN, p_daily_cap BIGINT, p_max_hits INTEGER
) RETURNS TABLE (
    status TEXT, credited_now NUMERIC, position_seconds NUMERIC, credited_seconds NUMERIC,
    required_seconds INTEGER, duration_seconds INTEGER, completed_at TIMESTAMPTZ,
    reward_micros BIGINT, withheld_micros BIGINT, reward_entry_id BIGINT, last_heartbeat_at TIMESTAMPTZ,
    rl_hits INTEGER, rl_retry_after INTEGER
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
    v_budget NUMERIC;
    v_take NUMERIC;
    v_watched NUMMULTIRANGE;
    v_new NUMMULTIRANGE;
    v_length NUMERIC;
    v_stream_started TIMESTAMPTZ;
    v_moved NUMERIC;
    v_delta NUMERIC := 0;
    v_credited NUMERIC;
    v_day DATE;
    v_granted BIGINT;
    v_withheld BIGINT;
    v_status TEXT;
    v_fresh BOOLEAN := false;
    v_window TIMESTAMPTZ := date_trunc('minute', now());
    v_stream_found BOOLEAN;
    v_rl_start TIMESTAMPTZ;
    v_rl_hits INTEGER;
BEGIN
    -- The per-user lock first (then the progress row: always in this order, so no deadlocks), and
    -- the rate limit on it: 429 comes before anything about the input, as for every other route.
    SELECT a.video_id, a.session_id, a.rl_window_start, a.rl_hits INTO s FROM active_streams a WHERE a.user_id = p_user_id FOR UPDATE;
    v_stream_found := FOUND;
    IF v_stream_found THEN
        v_rl_start := CASE WHEN p_max_hits IS NULL THEN s.rl_window_start ELSE v_window END;
        v_rl_hits := CASE WHEN p_max_hits IS NULL THEN s.rl_hits WHEN s.rl_window_start = v_window THEN s.rl_hits + 1 ELSE 1 END;
        IF v_rl_hits > p_max_hits THEN  -- over the limit: answered, nothing written
            RETURN QUERY SELECT 'rate_limited'::text, NULL::numeric, NULL::numeric, NULL::numeric, NULL::integer, NULL::integer,
                                NULL::timestamptz, NULL::bigint, NULL::bigint, NULL::bigint, NULL::timestamptz,
                                v_rl_hits, ceil(extract(epoch FROM v_window + interval '1 minute' - now()))::integer;
            RETURN;
        END IF;
    END IF;

    SELECT x.duration_seconds, x.reward_micros, x.required_watch_pct INTO v
      FROM videos x WHERE x.id = p_video_id AND x.active;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no such video %', p_video_id USING ERRCODE = 'EP101';
    END IF;
    IF p_position > v.duration_seconds THEN
        RAISE EXCEPTION 'position % is beyond the duration %', p_position, v.duration_seconds USING ERRCODE = 'EP102';
    END IF;
    v_required := video_required_seconds(v.duration_seconds, v.required_watch_pct);

    IF NOT v_stream_found THEN  -- the user's first heartbeat ever: the first of the window too
        INSERT INTO active_streams (user_id, video_id, session_id, last_heartbeat_at, rl_window_start, rl_hits)
        VALUES (p_user_id, p_video_id, p_session_id, v_now, v_window, CASE WHEN p_max_hits IS NULL THEN 0 ELSE 1 END)
        ON CONFLICT (user_id) DO NOTHING;
        SELECT a.video_id, a.session_id, a.rl_window_start, a.rl_hits INTO s FROM active_streams a WHERE a.user_id = p_user_id FOR UPDATE;
        v_rl_start := s.rl_window_start;  -- lost a race to insert it: the other heartbeat's count stands
        v_rl_hits := s.rl_hits;
        v_fresh := true;  -- no previous stream to continue: this heartbeat is a baseline
    END IF;

    SELECT * INTO p FROM video_progress x WHERE x.user_id = p_user_id AND x.video_id = p_video_id FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO video_progress AS x (user_id, video_id, position_seconds, session_id, last_client_seq, playing,
                                         started_at, last_heartbeat_at, watched, stream_started_at, stream_moved_seconds)
        VALUES (p_user_id, p_video_id, p_position, p_session_id, p_client_seq, p_playing, v_now, v_now,
                '{}'::nummultirange, v_now, 0);
        UPDATE active_streams a SET video_id = p_video_id, session_id = p_session_id, last_heartbeat_at = v_now,
                                    rl_window_start = v_rl_start, rl_hits = v_rl_hits
         WHERE a.user_id = p_user_id;
        RETURN QUERY SELECT 'started'::text, 0::numeric, p_position, 0::numeric, v_required, v.duration_seconds,
                            NULL::timestamptz, NULL::bigint, NULL::bigint, NULL::bigint, v_now, v_rl_hits, NULL::integer;
        RETURN;
    END IF;

    -- A replayed or out-of-order heartbeat of the same session: ignored entirely.
    IF p.session_id IS NOT DISTINCT FROM p_session_id AND p_client_seq <= p.last_client_seq THEN
        IF p_max_hits IS NOT NULL THEN  -- ignored, but counted
            UPDATE active_streams a SET rl_window_start = v_rl_start, rl_hits = v_rl_hits WHERE a.user_id = p_user_id;
        END IF;
        RETURN QUERY SELECT 'stale'::text, 0::numeric, p.position_seconds, p.credited_seconds, v_required, v.duration_seconds,
                            p.completed_at, p.reward_micros, p.withheld_micros, p.reward_entry_id, p.last_heartbeat_at,
                            v_rl_hits, NULL::integer;
        RETURN;
    END IF;

    -- Rows from before 0062 carry no ranges: what they credited counts as watched from the start,
    -- and their stream starts again (a baseline) with this heartbeat.
    v_watched := coalesce(p.watched, CASE WHEN p.credited_seconds > 0
                                          THEN nummultirange(numrange(0, p.credited_seconds)) ELSE '{}'::nummultirange END);
    v_same_stream := NOT v_fresh AND s.video_id = p_video_id AND s.session_id IS NOT DISTINCT FROM p_session_id
                     AND p.session_id IS NOT DISTINCT FROM p_session_id AND p.stream_started_at IS NOT NULL;
    IF v_same_stream THEN
        v_stream_started := p.stream_started_at;
        v_moved := p.stream_moved_seconds;
    ELSE
        v_stream_started := v_now;  -- a new stream: its wall clock starts now
        v_moved := 0;
    END IF;
    IF v_same_stream AND p.playing AND p.completed_at IS NULL AND p_position > p.position_seconds THEN
        -- The stream as a whole: forward movement (replays included) never exceeds the wall-clock
        -- time since the stream began plus 2 s, so arrival jitter evens out over the stream; one
        -- interval may run at most 1.5x its own time plus 2 s, so time banked while paused cannot
        -- be spent on one seek.
        v_elapsed := greatest(extract(epoch FROM v_now - p.last_heartbeat_at), 0);
        v_budget := extract(epoch FROM v_now - v_stream_started) + 2 - v_moved;
        v_take := round(greatest(least(p_position - p.position_seconds, v_budget, v_elapsed * 1.5 + 2), 0), 3);
        -- Running ahead of the clock (the movement was cut short): slivers under a second are not
        -- worth a range of their own; a client racing ahead would otherwise add one per heartbeat.
        IF v_take < p_position - p.position_seconds AND v_take < 1 THEN
            v_take := 0;
        END IF;
        v_moved := v_moved + v_take;
        IF v_take > 0 THEN
            -- the seconds just before the new position are the ones being played
            v_new := v_watched + nummultirange(numrange(p_position - v_take, p_position));
            IF v_new = nummultirange(range_merge(v_new)) THEN
                -- one stretch, the usual case (adjacent stretches merge): its length, no query
                v_watched := v_new;
                v_length := upper(v_new) - lower(v_new);
            -- An honest viewing is a handful of stretches; past 64 (a client fragmenting its
            -- coverage on purpose) no more are added, which bounds each heartbeat's work and the row.
            ELSIF (SELECT count(*) FROM unnest(v_new)) <= 64 THEN
                v_watched := v_new;
                SELECT sum(upper(r) - lower(r)) INTO v_length FROM unnest(v_new) r;
            END IF;
        END IF;
    END IF;
    -- Credit is coverage: distinct seconds of the video watched, not time spent looping some of them.
    v_credited := greatest(least(coalesce(v_length, 0), v.duration_seconds), p.credited_seconds);
    v_delta := v_credited - p.credited_seconds;

    IF p.completed_at IS NULL AND v_credited >= v_required THEN
        IF NOT p_complete THEN
            IF p_max_hits IS NOT NULL THEN  -- counted now: the completing transaction repeats it uncounted
                UPDATE active_streams a SET rl_window_start = v_rl_start, rl_hits = v_rl_hits WHERE a.user_id = p_user_id;
            END IF;
            RETURN QUERY SELECT 'completion_due'::text, v_delta, p_position, v_credited, v_required, v.duration_seconds,
                                NULL::timestamptz, NULL::bigint, NULL::bigint, NULL::bigint, p.last_heartbeat_at,
                                v_rl_hits, NULL::integer;
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
           watched = v_watched, stream_started_at = v_stream_started, stream_moved_seconds = v_moved,
           last_client_seq = p_client_seq, playing = p_playing, heartbeats = x.heartbeats + 1,
           last_heartbeat_at = v_now, completed_at = p.completed_at, reward_micros = p.reward_micros,
           withheld_micros = p.withheld_micros
     WHERE x.user_id = p_user_id AND x.video_id = p_video_id;
    UPDATE active_streams a SET video_id = p_video_id, session_id = p_session_id, last_heartbeat_at = v_now,
                                rl_window_start = v_rl_start, rl_hits = v_rl_hits
     WHERE a.user_id = p_user_id;

    RETURN QUERY SELECT v_status, v_delta, p_position, v_credited, v_required, v.duration_seconds,
                        p.completed_at, p.reward_micros, p.withheld_micros, p.reward_entry_id, v_now, v_rl_hits, NULL::integer;
END
$$;
REVOKE ALL ON FUNCTION progress_heartbeat(UUID, UUID, NUMERIC, BOOLEAN, BIGINT, UUID, BOOLEAN, BIGINT, INTEGER) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION progress_heartbeat(UUID, UUID, NUMERIC, BOOLEAN, BIGINT, UUID, BOOLEAN, BIGINT, INTEGER) TO earnpay_app;
