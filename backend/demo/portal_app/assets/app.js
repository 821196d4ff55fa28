// Business Portal __VERSION_LABEL__: loads the company table.
(function () {
  "use strict";
  var table = document.querySelector("#companies tbody");
  if (!table) { return; }
  fetch("/api/companies").then(function (r) { return r.json(); }).then(function (rows) {
    rows.forEach(function (c) {
      var tr = document.createElement("tr");
      [c.name, c.city, c.employees].forEach(function (v) {
        var td = document.createElement("td");
        td.textContent = String(v);
        tr.appendChild(td);
      });
      table.appendChild(tr);
    });
  });
})();
