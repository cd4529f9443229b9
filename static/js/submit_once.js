// One submit, one run: a launch form (it carries a hidden launch_key) or a button marked
// data-submit-once disables its submit buttons once submitted, so a double click sends
// one POST. The server is the real guard (rprm_web.runs.launch_once: a second POST with
// the same key gets the first run); this only spares the click. Buttons are disabled
// after the submit event has run, so the clicked button's name/value still goes with it.
(function () {
  function buttons(form) {
    return form.querySelectorAll("button[type=submit], button:not([type]), input[type=submit]");
  }
  function once(form) {
    return form.querySelector("input[name=launch_key]") || form.querySelector("[data-submit-once]");
  }
  document.addEventListener("submit", function (e) {
    var form = e.target;
    if (!form.matches || !form.matches("form") || !once(form)) return;
    // Prevented by someone else: not submitted, unless htmx sends it (hx-post).
    if (e.defaultPrevented && !form.hasAttribute("hx-post")) return;
    if (form.getAttribute("data-submitting") === "1") { e.preventDefault(); return; }
    form.setAttribute("data-submitting", "1");
    setTimeout(function () {
      buttons(form).forEach(function (b) { b.disabled = true; b.setAttribute("aria-busy", "true"); });
    }, 0);
  });
  function release(form) {
    form.removeAttribute("data-submitting");
    buttons(form).forEach(function (b) { b.disabled = false; b.removeAttribute("aria-busy"); });
  }
  // An htmx form (the evaluation launch) stays on the page: free it when the answer is in.
  document.addEventListener("htmx:afterRequest", function (e) {
    var form = e.detail && e.detail.elt;
    if (form && form.matches && form.matches("form[data-submitting]")) release(form);
  });
  // Back to a page from the browser's cache: its forms are usable again.
  window.addEventListener("pageshow", function (e) {
    if (e.persisted) document.querySelectorAll("form[data-submitting]").forEach(release);
  });
})();
