// Typesets the spans pymdownx.arithmatex emits in generic mode (\( .. \) inline, \[ .. \] display).
// Runs on every page load and, with Material's instant navigation, on every page switch.
(function () {
  "use strict";
  function typeset() {
    var options = {
      delimiters: [
        { left: "\\(", right: "\\)", display: false },
        { left: "\\[", right: "\\]", display: true }
      ],
      throwOnError: false
    };
    var nodes = document.querySelectorAll(".arithmatex");
    for (var i = 0; i < nodes.length; i++) {
      renderMathInElement(nodes[i], options);
    }
  }
  if (typeof document$ !== "undefined") {
    document$.subscribe(typeset);
  } else {
    document.addEventListener("DOMContentLoaded", typeset);
  }
})();
