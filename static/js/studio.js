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
  document.addEventListener("htmx:afterSwap", function (e) { if (e.detail && e.detail.target) renderMath(e.detail.target); });
  window.rprmRenderMath = renderMath;
})();
