"""The Content-Security-Policy additions for the Billing page, the one page that runs Paddle.js.

Paddle.js is served from cdn.paddle.com (Paddle asks not to self-host it) and opens its overlay
checkout in an iframe from buy.paddle.com (sandbox-buy.paddle.com in the sandbox); it calls
Paddle's checkout services from the page. See docs/billing.md ("CSP") for the reasoning.
"""

from django.conf import settings

PADDLE_JS_URL = "https://cdn.paddle.com/paddle/v2/paddle.js"


def paddle_csp_extra() -> dict[str, list[str]]:
    buy_host = (
        "https://buy.paddle.com"
        if settings.PADDLE_ENVIRONMENT == "live"
        else "https://sandbox-buy.paddle.com"
    )
    return {
        "script-src": ["https://cdn.paddle.com"],
        "style-src": ["https://cdn.paddle.com"],
        "frame-src": [buy_host],
        "connect-src": ["https://*.paddle.com"],
        "img-src": ["https://*.paddle.com"],
    }
