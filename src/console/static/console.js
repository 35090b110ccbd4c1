// The console's only script: live alerts on the inbox (Server-Sent Events from /live).
// Every value is inserted with textContent, never as markup.
(function () {
  "use strict";
  var box = document.getElementById("live-rows");
  if (!box || !window.EventSource) return;
  var count = document.getElementById("live-count");
  var n = 0;
  var es = new EventSource("/live");
  es.addEventListener("alert", function (ev) {
    var a;
    try { a = JSON.parse(ev.data); } catch (e) { return; }
    var tr = document.createElement("tr");
    tr.className = "live-alert sev-" + String(a.severity).replace(/[^a-z]/g, "");
    var cells = [a.ts, a.rule, a.severity, a.entity + " " + (a.pan_masked || a.entity_id), a.reason];
    cells.forEach(function (c) {
      var td = document.createElement("td");
      td.textContent = c == null ? "" : String(c);
      tr.appendChild(td);
    });
    var td = document.createElement("td");
    var link = document.createElement("a");
    link.href = "/cases/" + encodeURIComponent(String(a.case_id));
    link.textContent = "case " + String(a.case_id);
    td.appendChild(link);
    tr.appendChild(td);
    box.insertBefore(tr, box.firstChild);
    while (box.children.length > 50) box.removeChild(box.lastChild);
    n += 1;
    count.textContent = String(n);
  });
  es.addEventListener("lagged", function () {
    var p = document.getElementById("live-note");
    if (p) p.textContent = "Some live alerts were skipped: reload the page.";
  });
})();
