// Math rendering: KaTeX auto-render on load and on every htmx swap.
// Text is inserted by the server already escaped; auto-render only reads text
// nodes, so HTML inside step text stays inert.
(function () {
  const DELIMITERS = [
    { left: "$$", right: "$$", display: true },
    { left: "\\[", right: "\\]", display: true },
    { left: "\\(", right: "\\)", display: false },
    { left: "$", right: "$", display: false },
  ];
  function renderMath(root) {
    if (!window.renderMathInElement) return;
    root.querySelectorAll(".math").forEach(function (el) {
      window.renderMathInElement(el, { delimiters: DELIMITERS, throwOnError: false, ignoredTags: ["script", "noscript", "style", "textarea", "pre", "code"] });
    });
  }
  document.addEventListener("DOMContentLoaded", function () { renderMath(document); });
  // <select data-autosubmit> submits its form on change (no inline handlers: the CSP forbids them).
  document.addEventListener("change", function (e) {
    if (e.target.matches && e.target.matches("select[data-autosubmit]") && e.target.form) e.target.form.submit();
  });
  document.addEventListener("htmx:afterSwap", function (e) { if (e.detail && e.detail.target) renderMath(e.detail.target); });
  window.rprmRenderMath = renderMath;
})();
