// gokai status page: every two seconds, fetch the page again and swap its content in place (the page is
// rendered on the server; this only spares a full reload). On a failed fetch the ready badge says so.
(function () {
  "use strict";
  var every = 2000;
  function mark(text) {
    var el = document.getElementById("ready");
    if (el) { el.className = "stale"; el.textContent = text; }
  }
  function refresh() {
    fetch(window.location.pathname, { cache: "no-store", credentials: "same-origin" })
      .then(function (res) {
        if (!res.ok) { throw new Error("HTTP " + res.status); }
        return res.text();
      })
      .then(function (text) {
        var doc = new DOMParser().parseFromString(text, "text/html");
        var next = doc.getElementById("status");
        var cur = document.getElementById("status");
        if (next && cur) { cur.replaceWith(document.importNode(next, true)); }
      })
      .catch(function (err) { mark("node unreachable: " + err.message); })
      .then(function () { window.setTimeout(refresh, every); });
  }
  window.setTimeout(refresh, every);
})();
