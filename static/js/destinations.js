/* Destination form: show only the chosen kind's parameters. */
(function () {
  "use strict";
  var kind = document.getElementById("id_kind");
  function show() {
    Array.prototype.forEach.call(document.querySelectorAll("fieldset[data-kind]"), function (box) {
      box.hidden = box.getAttribute("data-kind") !== kind.value;
    });
  }
  kind.addEventListener("change", show);
  show();
}());
