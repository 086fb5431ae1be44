// What the templates ask of every page through data attributes: the Content-Security-Policy
// runs scripts from files only, so no template carries an inline handler (onsubmit=...).
(function () {
  "use strict";
  // <form data-confirm="Delete this layout?">: asks before the form is sent.
  document.addEventListener("submit", function (event) {
    var question = event.target.getAttribute("data-confirm");
    if (question && !window.confirm(question)) event.preventDefault();
  });
})();
