"""The interactive API docs at ``/docs``, served with no network: Swagger UI's script, stylesheet and
icon come from the installed ``swagger-ui-bundle-v2`` package (import name ``swagger_ui_bundle``;
Swagger UI 5, which reads OpenAPI 3.1), mounted at ``/docs/assets``, not from a CDN, as the dashboard's
Plotly comes from ``frontend/vendor``. ReDoc (CDN-only) is not offered.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

ASSETS = "/docs/assets"


def install(app: FastAPI) -> None:
    """Add ``GET /docs`` (Swagger UI on ``app.openapi_url``) and its local assets to ``app``; the app
    must be created with ``docs_url=None, redoc_url=None``."""
    app.mount(ASSETS, StaticFiles(directory=swagger_ui_path), name="swagger-ui-assets")

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} – API docs",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon-32x32.png",
        )
