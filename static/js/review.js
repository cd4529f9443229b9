// Keyboard-first review. Every key presses a real button or link in the page, so
// the server sees exactly what a mouse (or a browser without JavaScript) would send.
//   s f l x   decide: sound / flawed / label wrong / skip (then the next item loads)
//   t         take a critique opened by link (deciding needs its lease)
//   1-9 0     toggle error types      u   undo the last decision
//   j n / k p next / previous         e   write a note (Esc leaves it)   ?  key help
//   c         cycle the corrected label (what "label wrong" proposes)
// The adjudication screen uses the same keys (s f l decide, x passes, u undoes).
// Time on task: visible time since the screen loaded, posted with the decision.
(function () {
  "use strict";
  const DECISIONS = { s: "sound", f: "flawed", l: "label_wrong", x: "skip" };
  let shownAt = performance.now();
  let hiddenSince = document.hidden ? performance.now() : null;
  let hiddenMs = 0;

  function resetTimer() {
    shownAt = performance.now();
    hiddenMs = 0;
    hiddenSince = document.hidden ? performance.now() : null;
  }
  function visibleMs() {
    const now = performance.now();
    const hidden = hiddenMs + (hiddenSince === null ? 0 : now - hiddenSince);
    return Math.max(0, Math.round(now - shownAt - hidden));
  }
  document.addEventListener("visibilitychange", function () {
    if (document.hidden) hiddenSince = performance.now();
    else if (hiddenSince !== null) { hiddenMs += performance.now() - hiddenSince; hiddenSince = null; }
  });

  function screen() { return document.getElementById("review-screen"); }
  function typing(el) {
    if (!el) return false;
    const tag = el.tagName;
    return tag === "TEXTAREA" || tag === "SELECT" || el.isContentEditable ||
      (tag === "INPUT" && !["checkbox", "radio", "submit", "button", "hidden"].includes(el.type));
  }
  function press(el) {
    if (!el || el.disabled || el.getAttribute("aria-disabled") === "true") return false;
    el.click();
    return true;
  }

  // Stamp the timer into the decision form before htmx (or the browser) reads it.
  document.addEventListener("submit", function (e) {
    const field = e.target.querySelector && e.target.querySelector("#id_time_on_task_ms");
    if (field) field.value = String(visibleMs());
    // A full-page submit (no htmx): ignore further keys until the next page loads.
    const root = screen();
    if (root && !e.target.hasAttribute("hx-post")) root.classList.add("busy");
  }, true);

  document.addEventListener("keydown", function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey || e.repeat) return;
    if (typing(e.target)) {
      if (e.key === "Escape") e.target.blur();
      return;
    }
    const root = screen();
    if (!root) {
      // Queue page: Enter starts (or continues) reviewing.
      if (e.key === "Enter" && press(document.getElementById("start-review"))) e.preventDefault();
      return;
    }
    if (root.classList.contains("busy")) { e.preventDefault(); return; }
    const key = e.key.length === 1 ? e.key.toLowerCase() : e.key;
    let done = false;
    if (DECISIONS[key]) {
      done = press(root.querySelector('#decision-form button[name="decision"][value="' + DECISIONS[key] + '"]'));
    } else if (/^[0-9]$/.test(key)) {
      const box = root.querySelector('#decision-form input[data-digit="' + key + '"]');
      if (box) { box.checked = !box.checked; box.dispatchEvent(new Event("change", { bubbles: true })); done = true; }
    } else if (key === "t") {
      done = press(root.querySelector('[data-action="take"]'));
    } else if (key === "u") {
      done = press(root.querySelector('[data-action="undo"]'));
    } else if (key === "j" || key === "n") {
      done = press(root.querySelector('[data-action="next"]'));
    } else if (key === "k" || key === "p") {
      done = press(root.querySelector('[data-action="previous"]'));
    } else if (key === "c") {
      const select = root.querySelector("#id_proposed_label");
      if (select && select.options.length) {
        select.selectedIndex = (select.selectedIndex + 1) % select.options.length;
        select.dispatchEvent(new Event("change", { bubbles: true }));
        done = true;
      }
    } else if (key === "e") {
      const note = root.querySelector("#id_note");
      if (note) { note.focus(); done = true; }
    } else if (key === "?") {
      done = press(root.querySelector('[data-action="help"]'));
    }
    if (done) e.preventDefault();
  });

  document.addEventListener("click", function (e) {
    const help = e.target.closest && e.target.closest('[data-action="help"]');
    if (!help) return;
    const box = document.getElementById("review-help");
    if (box) box.hidden = !box.hidden;
  });

  // One request at a time: a second key while a decision is in flight is ignored.
  document.addEventListener("htmx:beforeRequest", function () {
    const root = screen();
    if (root) root.classList.add("busy");
  });
  document.addEventListener("htmx:afterRequest", function () {
    const root = screen();
    if (root) root.classList.remove("busy");
  });
  // A refusal (say, the role was taken away mid-session): show the 403 page itself,
  // which htmx would not swap in.
  document.addEventListener("htmx:responseError", function (e) {
    if (e.detail.xhr && e.detail.xhr.status === 403) window.location.reload();
  });
  document.addEventListener("htmx:afterSwap", function (e) {
    if (e.detail.target && e.detail.target.id === "review-screen" || screen() === e.detail.elt) {
      resetTimer();
      window.scrollTo(0, 0);
    }
  });
  document.addEventListener("htmx:afterSettle", function () {
    const root = screen();
    if (root && window.rprmRenderMath) window.rprmRenderMath(root);
  });
})();
