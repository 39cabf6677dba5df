"""Cloud Functions entry points: one decorated function per deployed function, nothing else.

Each hands its request or event to its area under ``functions/``. ``python main.py <command>`` runs
the command line (serve, migrate, create-admin, seed-demo, ...).
"""

import sys

import flask
import functions_framework
from cloudevents.http import CloudEvent

from functions.admin.routes import router as admin_router
from functions.auth.routes import router as auth_router
from functions.earnings.routes import router as earnings_router
from functions.health.routes import router as health_router
from functions.kyc import events as kyc_events
from functions.kyc.routes import router as kyc_router
from functions.ledger import events as ledger_events
from functions.maintenance import events as maintenance_events
from functions.notifications import events as notifications_events
from functions.partners.routes import router as partner_callbacks_router
from functions.payouts import events as payouts_events
from functions.payouts.routes import router as payouts_router
from functions.privacy import events as privacy_events
from functions.privacy.routes import router as privacy_router
from functions.progress.routes import router as progress_router
from functions.videos.routes import router as videos_router

# Every HTTP function's router: the one list the OpenAPI document (``python main.py openapi``) and the
# route tests read. A new HTTP function adds its router here and its entry point below.
ROUTERS = (
    admin_router,
    auth_router,
    earnings_router,
    health_router,
    kyc_router,
    partner_callbacks_router,
    payouts_router,
    privacy_router,
    progress_router,
    videos_router,
)


@functions_framework.http
def auth(request: flask.Request) -> flask.Response:
    """Sign-up, login, logout, profile, password."""
    return auth_router(request)


@functions_framework.http
def videos(request: flask.Request) -> flask.Response:
    """The video catalogue."""
    return videos_router(request)


@functions_framework.http
def progress(request: flask.Request) -> flask.Response:
    """Watch-progress heartbeats."""
    return progress_router(request)


@functions_framework.http
def earnings(request: flask.Request) -> flask.Response:
    """Earnings history, stats and export."""
    return earnings_router(request)


@functions_framework.http
def payouts(request: flask.Request) -> flask.Response:
    """Payout methods and requests."""
    return payouts_router(request)


@functions_framework.http
def kyc(request: flask.Request) -> flask.Response:
    """Identity documents and KYC status."""
    return kyc_router(request)


@functions_framework.http
def privacy(request: flask.Request) -> flask.Response:
    """Data export and erasure."""
    return privacy_router(request)


@functions_framework.http
def admin(request: flask.Request) -> flask.Response:
    """The staff back office."""
    return admin_router(request)


@functions_framework.http
def health(request: flask.Request) -> flask.Response:
    """Health check for load balancers and uptime checks."""
    return health_router(request)


@functions_framework.http
def partner_callbacks(request: flask.Request) -> flask.Response:
    """Signed server-to-server reward callbacks from rewarded-video networks and offerwalls."""
    return partner_callbacks_router(request)


@functions_framework.cloud_event
def credit_earnings(event: CloudEvent) -> None:
    """Applies credit requests from Pub/Sub to the ledger exactly once."""
    ledger_events.credit_earnings(event)


@functions_framework.cloud_event
def process_payouts(event: CloudEvent) -> None:
    """Pays approved payouts in batches."""
    payouts_events.process_payouts(event)


@functions_framework.cloud_event
def run_maintenance(event: CloudEvent) -> None:
    """Runs the maintenance task named in the message."""
    maintenance_events.run_maintenance(event)


@functions_framework.cloud_event
def kyc_document_uploaded(event: CloudEvent) -> None:
    """Records an uploaded KYC document and moves the user to review."""
    kyc_events.kyc_document_uploaded(event)


@functions_framework.cloud_event
def export_user_data(event: CloudEvent) -> None:
    """Writes a user's data export to Cloud Storage."""
    privacy_events.export_user_data(event)


@functions_framework.cloud_event
def send_notifications(event: CloudEvent) -> None:
    """Emails a user notification at most once."""
    notifications_events.send_notifications(event)


if __name__ == "__main__":
    from functions.cli import main as cli

    sys.exit(cli(sys.argv[1:], routers=ROUTERS))
