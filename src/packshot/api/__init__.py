"""The studio's web API and page (`packshot serve`): FastAPI over the job store; no torch here.

The web process never runs a model: it validates, stores and enqueues typed jobs
(`packshot.jobs`), and reads their events back. Layout (as full-stack-fastapi-template):
`app.py` builds the app, `routes/` are thin, `schemas.py` has the bodies (`XCreate`,
`XPublic`), `deps.py` the dependencies (`SessionDep`, `CurrentMerchant`), `settings.py` the
limits, `errors.py` the JSON errors, `uploads.py` the streamed multipart reader.

Authentication, for scripts: `Authorization: Bearer <API key>` on every request (keys come
from `packshot merchants create`; stored only as hashes, compared in constant time).

Authentication, for the page in `web/` (same origin):

1. `POST /v1/session` with JSON `{"key": "<API key>"}` → 200 `{"merchant": {id, name},
   "csrf_token": "...", "webhook_secret": "..."}` and an HttpOnly, SameSite=Strict cookie
   `packshot_session` (Secure with PACKSHOT_SECURE_COOKIES=1). 401 for a wrong key.
2. Every later request sends the cookie (fetch's default `credentials: "same-origin"`).
   Every POST/PUT/PATCH/DELETE must also send the header `X-CSRF-Token: <csrf_token>`;
   without it (or with another) the answer is 403 `{"error": {"code": "csrf_failed"}}`.
3. `GET /v1/session` → the same body (with the cookie: its csrf_token again, so a reloaded
   page recovers it); 401 when not signed in. `DELETE /v1/session` (with the CSRF header)
   signs out and clears the cookie.

Errors are always JSON `{"error": {"code", "message"}}`: 401 no/invalid key, 403 CSRF,
404 missing or another merchant's id, 409 conflict (e.g. no photos yet, job already
finished), 413 upload too large, 415 not multipart, 422 invalid body, 429 rate limited
(`Retry-After`), 500 internal (logged, never with keys or photo bytes).

Images: `GET /v1/photos/{id}/image`, `GET /v1/shots/{id}/image`, training samples at
`/v1/trainings/{id}/files/samples/…` need the same cookie (an `<img src>` sends it).
Progress: `GET /v1/trainings/{id}/events` and `/v1/shoots/{id}/events` are server-sent
events (`EventSource` sends the cookie): `step` {step, loss, done, total, ...},
`sample` {urls}, `checkpoint`, `resume`, `shot`, `warning`, `done`, `failed`, `canceled`,
then `end` {status}. The page is served from `web/` at `/` with a Content-Security-Policy of
'self' only (no inline scripts or styles; images also from data: and blob:).
"""
