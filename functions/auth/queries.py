"""SQL of the auth function: one named statement each."""

from shared.db import Query

USER_COLUMNS = """u.id::text AS id, u.email, u.display_name, u.referral_code, u.referred_by::text AS referred_by,
    u.kyc_status, u.role, u.status, u.email_verified_at IS NOT NULL AS email_verified, u.created_at"""

USER_ID_BY_REFERRAL_CODE = Query("user_id_by_referral_code", "SELECT id::text AS id, status FROM users WHERE referral_code = :code")

INSERT_USER = Query(
    "insert_user",
    f"""INSERT INTO users AS u (email, password_hash, display_name, referral_code, referred_by, role)
        VALUES (:email, :password_hash, :display_name, :referral_code, CAST(:referred_by AS uuid), :role)
        ON CONFLICT DO NOTHING
        RETURNING {USER_COLUMNS}""",
)

USER_BY_CANONICAL_EMAIL = Query(
    "user_by_canonical_email", "SELECT u.id::text AS id FROM users u WHERE u.canonical_email = ep_canonical_email(:email)"
)

USER_FOR_LOGIN = Query(
    "user_for_login",
    f"SELECT {USER_COLUMNS}, u.password_hash FROM users u WHERE u.email = :email",
)

USER_BY_ID = Query("user_by_id", f"SELECT {USER_COLUMNS} FROM users u WHERE u.id = CAST(:id AS uuid)")
# The profile with the version it was read at (the profile cache's validator, migration 0070).
USER_PROFILE_BY_ID = Query("user_profile_by_id", f"SELECT {USER_COLUMNS}, u.profile_version FROM users u WHERE u.id = CAST(:id AS uuid)")

PASSWORD_HASH_BY_ID = Query("password_hash_by_id", "SELECT password_hash FROM users WHERE id = CAST(:id AS uuid)")

UPDATE_PASSWORD_HASH = Query(
    "update_password_hash",
    """UPDATE users SET password_hash = :password_hash, updated_at = now(),
              password_changed_at = CASE WHEN :changed THEN now() ELSE password_changed_at END
        WHERE id = CAST(:id AS uuid)""",
)

# Recent failures for this email since its last success (a success resets the count), counted by
# the email typed so unknown and known addresses behave alike, and whether this IP has ever logged
# into the account: the soft lock never applies to a known IP, so an attacker cannot lock the real
# user out.
LOGIN_GUARD = Query(
    "login_guard",
    """
    WITH last_ok AS (
        SELECT coalesce(max(created_at), '-infinity') AS at FROM login_attempts
         WHERE email = :email AND succeeded
    )
    SELECT count(*) AS recent_failures, max(a.created_at) AS last_failure_at,
           EXISTS (SELECT 1 FROM login_attempts k
                    WHERE k.email = :email AND k.succeeded AND k.ip = CAST(:ip AS inet)) AS known_ip
      FROM login_attempts a, last_ok
     WHERE a.email = :email AND NOT a.succeeded
       AND a.created_at > greatest(last_ok.at, now() - make_interval(mins => :window_minutes))
    """,
)

RECORD_LOGIN_ATTEMPT = Query(
    "record_login_attempt",
    """INSERT INTO login_attempts (email, user_id, ip, succeeded)
       VALUES (:email, CAST(:user_id AS uuid), CAST(:ip AS inet), :succeeded)""",
)

INSERT_SESSION = Query(
    "insert_session",
    """INSERT INTO sessions (user_id, token_hash, idle_timeout, expires_at, ip, user_agent)
       VALUES (CAST(:user_id AS uuid), :token_hash, make_interval(mins => :idle_minutes),
               now() + make_interval(hours => :absolute_hours), CAST(:ip AS inet), :user_agent)
       RETURNING id, expires_at""",
)

REVOKE_SESSION = Query(
    "revoke_session",
    "UPDATE sessions SET revoked_at = now(), revoked_reason = :reason WHERE id = :id AND revoked_at IS NULL",
)

REVOKE_USER_SESSIONS = Query(
    "revoke_user_sessions",
    """UPDATE sessions SET revoked_at = now(), revoked_reason = :reason
        WHERE user_id = CAST(:user_id AS uuid) AND revoked_at IS NULL AND id IS DISTINCT FROM CAST(:keep_id AS bigint)""",
)

MARK_EMAIL_VERIFIED = Query(
    "mark_email_verified",
    f"""UPDATE users u SET email_verified_at = coalesce(email_verified_at, now()), updated_at = now()
         WHERE id = CAST(:id AS uuid) RETURNING {USER_COLUMNS}""",
)

EMAIL_IN_USE = Query("email_in_use", "SELECT EXISTS (SELECT 1 FROM users WHERE email = :email) AS taken")

CHANGE_EMAIL = Query(
    "change_email",
    f"""UPDATE users u SET email = :email, email_verified_at = now(), updated_at = now()
         WHERE id = CAST(:id AS uuid) AND NOT EXISTS (SELECT 1 FROM users o WHERE o.email = :email)
        RETURNING {USER_COLUMNS}""",
)

SESSION_MFA_PASSED = Query("session_mfa_passed", "UPDATE sessions SET mfa_at = now(), step_up_at = now() WHERE id = :id")

# A device: the client's network (/24 or /64) and user agent, hashed. Returns whether it is new and
# whether the user had any device before (the first sign-in of an account is not "a new device").
REMEMBER_DEVICE = Query(
    "remember_device",
    """WITH before AS (SELECT EXISTS (SELECT 1 FROM known_devices WHERE user_id = CAST(:user_id AS uuid)) AS found),
            ins AS (INSERT INTO known_devices (user_id, device_hash) VALUES (CAST(:user_id AS uuid), :device_hash)
                    ON CONFLICT DO NOTHING RETURNING 1)
       SELECT EXISTS (SELECT 1 FROM ins) AS new_device, (SELECT found FROM before) AS had_devices""",
)

SET_ROLE = Query("set_user_role", "UPDATE users SET role = :role, updated_at = now() WHERE id = CAST(:id AS uuid)")
