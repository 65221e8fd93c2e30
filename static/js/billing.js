// TokenScope Billing page: initialises Paddle.js (loaded on this page only) from data- attributes
// and opens the overlay checkout with a server-issued checkout intent. The success page polls our
// own status endpoint until the webhook has applied the subscription. No inline script (CSP).
(function () {
  "use strict";

  function setMessage(text) {
    var el = document.getElementById("billing-message");
    if (el) { el.textContent = text; }
  }

  function csrfToken(root) {
    var input = root.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  function initCheckout(root) {
    var token = root.dataset.paddleToken;
    if (!window.Paddle || !token) {
      setMessage("Checkout is unavailable right now.");
      return;
    }
    if (root.dataset.paddleEnvironment !== "live") {
      window.Paddle.Environment.set("sandbox");
    }
    window.Paddle.Initialize({ token: token });
    var buttons = root.querySelectorAll("button[data-plan-price]");
    buttons.forEach(function (button) {
      button.disabled = false;
      button.addEventListener("click", function () {
        button.disabled = true;
        setMessage("Opening checkout…");
        var body = new URLSearchParams({ plan_price: button.dataset.planPrice });
        fetch(root.dataset.intentUrl, {
          method: "POST",
          credentials: "same-origin",
          headers: { "X-CSRFToken": csrfToken(root) },
          body: body
        })
          .then(function (response) {
            return response.json().then(function (data) { return { ok: response.ok, data: data }; });
          })
          .then(function (result) {
            button.disabled = false;
            if (!result.ok) { setMessage(result.data.error || "Checkout could not start."); return; }
            setMessage("");
            window.Paddle.Checkout.open({
              items: [{ priceId: result.data.price_id, quantity: 1 }],
              customData: { checkout_intent_id: result.data.checkout_intent_id },
              customer: root.dataset.customerEmail ? { email: root.dataset.customerEmail } : undefined,
              settings: { successUrl: result.data.success_url }
            });
          })
          .catch(function () {
            button.disabled = false;
            setMessage("Checkout could not start; try again.");
          });
      });
    });
  }

  function pollStatus(root) {
    var url = root.dataset.statusUrl;
    var text = document.getElementById("checkout-status-text");
    if (!url || !text) { return; }
    var tries = 0;
    function tick() {
      tries += 1;
      fetch(url, { credentials: "same-origin" })
        .then(function (response) { return response.json(); })
        .then(function (data) {
          if (data.applied) {
            text.textContent = "Your " + data.plan + " plan is active.";
            return;
          }
          if (tries < 90) { window.setTimeout(tick, 2000); } else {
            text.textContent = "This is taking longer than usual. Your plan will update shortly; " +
              "you can leave this page.";
          }
        })
        .catch(function () { if (tries < 90) { window.setTimeout(tick, 4000); } });
    }
    tick();
  }

  document.addEventListener("DOMContentLoaded", function () {
    var billing = document.getElementById("billing");
    if (billing) { initCheckout(billing); }
    var status = document.getElementById("checkout-status");
    if (status) { pollStatus(status); }
  });
})();
