// Math rendering. The server splits text into prose and formulas by one rule
// (pandoc's, see rprm_web/mathtext.py): each formula arrives as
// <span class="tex" data-tex="..." data-display="0|1"> showing its source, and is
// typeset here with KaTeX, on load and after every htmx swap. KaTeX auto-render is
// not used: it pairs any two "$" and turned "$1 off ... every $20" into math.
(function () {
  // Options for untrusted text (model output, imported data): never throw, no
  // \href/\includegraphics (trust off), and bounded sizes and macro expansion so a
  // crafted formula cannot cover the page or hang the tab.
  var OPTIONS = { throwOnError: false, trust: false, strict: "ignore", maxSize: 10, maxExpand: 300 };
  function renderMath(root) {
    if (!window.katex || !root || !root.querySelectorAll) return;
    root.querySelectorAll("span.tex:not([data-typeset])").forEach(function (el) {
      try {
        window.katex.render(el.getAttribute("data-tex"), el, Object.assign({ displayMode: el.getAttribute("data-display") === "1" }, OPTIONS));
        el.setAttribute("data-typeset", "1");
      } catch (e) { /* the source stays visible, as written */ }
    });
  }
  document.addEventListener("DOMContentLoaded", function () { renderMath(document); });
  // <select data-autosubmit> submits its form on change (no inline handlers: the CSP forbids them).
  document.addEventListener("change", function (e) {
    if (e.target.matches && e.target.matches("select[data-autosubmit]") && e.target.form) e.target.form.submit();
  });
  // Whole document: an outerHTML swap detaches the event target; typeset spans are skipped.
  document.addEventListener("htmx:afterSettle", function () { renderMath(document); });
  window.rprmRenderMath = renderMath;
})();
