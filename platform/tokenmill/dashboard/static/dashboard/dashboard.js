// Tokenmill dashboard: copy buttons, confirmations, menus. No framework, no network.
(function () {
  "use strict";

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    // Plain-HTTP deployments have no Clipboard API: fall back to a selection.
    return new Promise(function (resolve, reject) {
      var area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.style.position = "fixed";
      area.style.opacity = "0";
      document.body.appendChild(area);
      area.select();
      var ok = document.execCommand("copy");
      document.body.removeChild(area);
      if (ok) { resolve(); } else { reject(new Error("copy failed")); }
    });
  }

  function flash(button, label) {
    var original = button.dataset.label || button.textContent;
    button.dataset.label = original;
    button.textContent = label;
    button.classList.add("is-done");
    window.setTimeout(function () {
      button.textContent = original;
      button.classList.remove("is-done");
    }, 2000);
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (!button) { return; }
    var source = document.getElementById(button.getAttribute("data-copy"));
    if (!source) { return; }
    copyText(source.textContent.trim()).then(
      function () { flash(button, "Copied!"); },
      function () { flash(button, "Press Ctrl+C"); }
    );
  });

  // A suspended organization changes nothing: any form that would is disabled, and
  // says why (the banner at the top tells whom to contact).
  if (document.body.hasAttribute("data-read-only")) {
    document.querySelectorAll('form[method="post"]:not([data-always]) button, form[method="post"]:not([data-always]) input, form[method="post"]:not([data-always]) select').forEach(function (control) {
      control.disabled = true;
      control.title = "Your organization is suspended";
    });
  }

  // Close an open menu when clicking elsewhere or pressing Escape.
  document.addEventListener("click", function (event) {
    document.querySelectorAll("details.menu[open]").forEach(function (menu) {
      if (!menu.contains(event.target)) { menu.removeAttribute("open"); }
    });
  });
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") { return; }
    document.querySelectorAll("details.menu[open]").forEach(function (menu) {
      menu.removeAttribute("open");
    });
  });

  // The main navigation scrolls sideways when it does not fit: show the current page,
  // and fade the edges that have more links behind them, so it is plain that it scrolls.
  document.querySelectorAll(".mainnav").forEach(function (nav) {
    function edges() {
      var more = nav.scrollWidth - nav.clientWidth;
      nav.classList.toggle("has-more-left", more > 1 && nav.scrollLeft > 1);
      nav.classList.toggle("has-more-right", more > 1 && nav.scrollLeft < more - 1);
    }
    var current = nav.querySelector('[aria-current="page"]');
    if (current && nav.scrollWidth > nav.clientWidth) {
      nav.scrollLeft = current.offsetLeft - (nav.clientWidth - current.offsetWidth) / 2;
    }
    edges();
    nav.addEventListener("scroll", edges, { passive: true });
    window.addEventListener("resize", edges);
  });

  // A page showing a new secret answers a POST: turn the history entry into a GET,
  // so reloading lists the keys instead of posting the form (and minting a key) again.
  if (document.querySelector("[data-replace-history]") && window.history.replaceState) {
    window.history.replaceState(null, "", window.location.href);
  }
})();
