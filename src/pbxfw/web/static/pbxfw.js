/* pbxfw admin page: small comforts on top of plain HTML forms. No dependencies. */
"use strict";

document.documentElement.classList.add("js");

document.addEventListener("DOMContentLoaded", function () {
  // Switches that save as soon as they change (the Save button is for no-JS).
  document.querySelectorAll("form[data-autosubmit]").forEach(function (form) {
    form.addEventListener("change", function () { form.requestSubmit(); });
  });

  // Ask before destructive posts.
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) { event.preventDefault(); }
    });
  });

  setUpMask();
  setUpCountdown();
});

/* The mask list follows the address family: /0–/32 for IPv4, /0–/128 for IPv6.
   A whole CIDR typed into the address is split into address and mask. */
function setUpMask() {
  var address = document.getElementById("address");
  var prefix = document.getElementById("prefix");
  if (!address || !prefix || prefix.disabled || !document.querySelector(".network-form")) { return; }

  function fill(max, wanted) {
    if (prefix.options.length === max + 1) { prefix.value = String(wanted); return; }
    prefix.textContent = "";
    for (var p = 0; p <= max; p++) {
      var option = document.createElement("option");
      option.value = String(p);
      option.textContent = "/" + p;
      prefix.appendChild(option);
    }
    prefix.value = String(wanted);
  }

  function sync() {
    var text = address.value.trim();
    var slash = text.indexOf("/");
    if (slash >= 0) {
      var bits = parseInt(text.slice(slash + 1), 10);
      var host = text.slice(0, slash);
      var max = host.indexOf(":") >= 0 ? 128 : 32;
      if (!isNaN(bits) && bits >= 0 && bits <= max && /^\d+$/.test(text.slice(slash + 1))) {
        address.value = host;
        fill(max, bits);
      }
      return;
    }
    var current = parseInt(prefix.value, 10);
    if (text.indexOf(":") >= 0 && prefix.options.length !== 129) {
      fill(128, current > 32 ? current : 64);
    } else if (text !== "" && text.indexOf(":") < 0 && prefix.options.length !== 33) {
      fill(32, current <= 32 ? current : 24);
    }
  }

  address.addEventListener("input", sync);
  address.addEventListener("change", sync);
}

/* Apply with confirmation: count down, and keep asking the server whether the
   change is still pending. If the server cannot be reached (the change cut us
   off), say so and stop: the rollback happens on the server by itself. */
function setUpCountdown() {
  var box = document.getElementById("pending");
  if (!box) { return; }
  var deadline = parseFloat(box.getAttribute("data-deadline"));
  var offset = parseFloat(box.getAttribute("data-now")) - Date.now() / 1000;
  var counter = document.getElementById("countdown");
  var reach = document.getElementById("pending-reach");
  var text = document.getElementById("pending-text");
  var buttons = document.getElementById("pending-buttons");
  var stopped = false;

  function serverNow() { return Date.now() / 1000 + offset; }

  function finish(message, heading) {
    stopped = true;
    // What the page said while the change was pending no longer holds.
    document.querySelectorAll(".flash, .dot").forEach(function (e) { e.hidden = true; });
    document.getElementById("pending-title").textContent = heading;
    text.textContent = message;
    buttons.hidden = true;
    reach.hidden = true;
    box.classList.add("ended");
    box.setAttribute("role", "status");
  }

  function unreachable() {
    reach.hidden = false;
    reach.textContent = "The server cannot be reached. If this change cut you off, the previous rules come back by themselves when the time is up.";
  }

  function poll() {
    if (stopped) { return; }
    var controller = new AbortController();
    var timer = setTimeout(function () { controller.abort(); }, 2500);
    fetch("/apply/status", { credentials: "same-origin", cache: "no-store", signal: controller.signal })
      .then(function (response) {
        clearTimeout(timer);
        if (!response.ok) { throw new Error("status " + response.status); }
        return response.json();
      })
      .then(function (state) {
        reach.hidden = true;
        if (!state.pending) {
          if (serverNow() >= deadline - 0.5) {
            finish("Not kept in time: the change was rolled back and the previous rules are in place again.", "Rolled back");
          } else {
            finish("This change is no longer waiting: it was kept or rolled back elsewhere. Reload the page to see the current state.", "No longer waiting");
          }
        }
      })
      .catch(function () { clearTimeout(timer); unreachable(); });
  }

  function tick() {
    if (stopped) { return; }
    var left = Math.max(0, Math.ceil(deadline - serverNow()));
    if (counter) { counter.textContent = String(left); }
    if (left === 0) {
      clearInterval(ticking);
      // The server's watchdog rolls back at the deadline; ask until it answers or give up.
      var tries = 0;
      var late = setInterval(function () {
        tries += 1;
        if (stopped || tries > 10) {
          clearInterval(late);
          if (!stopped) { finish("Time is up and the server cannot be reached: the previous rules are being restored by themselves. Reload this page in a moment.", "Rolling back"); }
          return;
        }
        poll();
      }, 1000);
    }
  }

  var ticking = setInterval(tick, 250);
  var polling = setInterval(function () { if (stopped) { clearInterval(polling); } else { poll(); } }, 2000);
  tick();
}
