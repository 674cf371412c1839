// The console without reloads. Links and forms are fetched and only <main> is swapped, so the
// alarm (alarm.js), a half-typed note elsewhere and the sound permission survive navigation;
// live events replace only the page's [data-live] regions that nobody is editing. No inline
// script anywhere (the Content-Security-Policy forbids it).
(function () {
  "use strict";
  var body = document.body;
  var POLL_MS = 3000;          // the banner: a dead daemon sends no event, so the page asks
  var skew = 0;                // station time minus this browser's clock, in seconds
  var lastEvent = 0;
  var refreshing = null, again = false, lastRefresh = Date.now();
  var mapView = null;      // the overview's centre and zoom, kept across its live redraws

  function stationNow() { return Date.now() / 1000 + skew; }

  // -- times and ages: in the page's language and the station's time zone --------------------
  function formatter() {
    try {
      return new Intl.DateTimeFormat(document.documentElement.lang || "en",
                                     { dateStyle: "medium", timeStyle: "medium", timeZone: body.dataset.tz || "UTC" });
    } catch (e) {
      return new Intl.DateTimeFormat(document.documentElement.lang || "en", { dateStyle: "medium", timeStyle: "medium" });
    }
  }

  function ages() {
    var rtf = new Intl.RelativeTimeFormat(document.documentElement.lang || "en", { numeric: "always" });
    document.querySelectorAll("[data-age]").forEach(function (el) {
      var ts = parseFloat(el.dataset.age);
      if (!isFinite(ts)) { return; }
      var s = Math.max(0, Math.round(stationNow() - ts));
      el.textContent = s < 120 ? rtf.format(-s, "second") : s < 7200 ? rtf.format(-Math.round(s / 60), "minute")
        : s < 172800 ? rtf.format(-Math.round(s / 3600), "hour") : rtf.format(-Math.round(s / 86400), "day");
    });
  }

  function init(root) {
    var fmt = formatter();
    root.querySelectorAll("time[data-ts]").forEach(function (t) {
      var d = new Date(parseFloat(t.dataset.ts) * 1000);
      t.textContent = fmt.format(d);
      t.setAttribute("datetime", d.toISOString());
    });
    root.querySelectorAll("[data-confirm-with]").forEach(confirmable);
    ages();
    var mapDiv = root.querySelector("#map");
    if (mapDiv) { drawMap(mapDiv); }
  }

  // A button that stays disabled until its form's confirmation box is ticked (a duress close).
  function confirmable(el) {
    var box = document.getElementById(el.dataset.confirmWith);
    if (!box) { return; }
    var sync = function () { el.disabled = !box.checked; };
    box.addEventListener("change", sync);
    sync();
  }

  // -- the station's state: banner, open alerts, and a missed live event ---------------------
  function applyState(s) {
    var banner = document.getElementById("banner");
    if (banner) {
      banner.textContent = "";
      s.banner.forEach(function (p) {
        var el = document.createElement("p"), strong = document.createElement("strong");
        el.className = "banner " + p.level;
        el.dataset.key = p.key;
        strong.textContent = p.text;
        el.appendChild(strong);
        el.appendChild(document.createTextNode(" " + p.remedy));
        banner.appendChild(el);
      });
    }
    if (window.stationAlarm) { window.stationAlarm.update(s.open, s.duress); }
    if (s.last_event !== lastEvent) {
      var missed = lastEvent !== 0;
      lastEvent = s.last_event;
      if (missed) { refresh(); return; }
    }
    // A region that shows what moves without an event (bracelets' positions on the map).
    var every = document.querySelector("main [data-refresh-s]");
    if (every && Date.now() - lastRefresh > 1000 * parseFloat(every.dataset.refreshS)) { refresh(); }
  }

  function unreachable() {
    var banner = document.getElementById("banner");
    if (!banner || banner.querySelector("[data-key=console]")) { return; }
    var el = document.createElement("p");
    el.className = "banner critical";
    el.dataset.key = "console";
    el.textContent = banner.dataset.offline;
    banner.insertBefore(el, banner.firstChild);
  }

  function poll() {
    if (!body.dataset.user) { return; }
    fetch("/api/state", { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); })
      .then(applyState, unreachable);
  }

  function readBody(doc) {
    ["page", "user", "open", "duress", "now", "tz"].forEach(function (k) { body.dataset[k] = doc.body.dataset[k] || ""; });
    skew = parseFloat(body.dataset.now || "0") - Date.now() / 1000;
    var ids = function (v) { return v ? v.split(",").map(Number) : []; };
    if (window.stationAlarm) { window.stationAlarm.update(ids(body.dataset.open), ids(body.dataset.duress)); }
    document.getElementById("alarm").hidden = !body.dataset.user;
    if (body.dataset.user) { listen(); }
  }

  // New events (a new alert, an acknowledgement) arrive over Server-Sent Events; the poll
  // catches any the stream missed.
  var source = null, pending = null;
  function listen() {
    if (source || !window.EventSource) { return; }
    source = new EventSource("/api/stream");
    source.addEventListener("incident", function (ev) {
      lastEvent = Math.max(lastEvent, parseInt(ev.lastEventId || "0", 10));
      if (pending) { return; }
      pending = setTimeout(function () { pending = null; refresh(); poll(); }, 200);
    });
  }

  // -- live regions --------------------------------------------------------------------------
  // A field someone has touched: its region waits until the field is sent or put back.
  function editing(region) {
    var fields = region.querySelectorAll("input, select, textarea");
    for (var i = 0; i < fields.length; i++) {
      var f = fields[i];
      if (f.type === "hidden" || f.type === "submit") { continue; }
      if (f === document.activeElement) { return true; }
      if (f.type === "checkbox" || f.type === "radio") {
        if (f.checked !== f.defaultChecked) { return true; }
      } else if (f.tagName === "SELECT") {
        var initial = 0;
        for (var j = 0; j < f.options.length; j++) { if (f.options[j].defaultSelected) { initial = j; } }
        if (f.selectedIndex !== initial) { return true; }
      } else if (f.value !== f.defaultValue) {
        return true;
      }
    }
    return false;
  }

  function refresh() {
    if (!document.querySelector("main [data-live]")) { return; }
    if (refreshing) { again = true; return; }
    lastRefresh = Date.now();
    var url = location.href;
    refreshing = fetch(url, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { return r.ok && location.href === url ? r.text() : null; })
      .then(function (html) {
        if (!html) { return; }
        var doc = new DOMParser().parseFromString(html, "text/html");
        doc.querySelectorAll("main [data-live][id]").forEach(function (fresh) {
          var old = document.getElementById(fresh.id);
          if (old && !editing(old)) {
            var node = document.importNode(fresh, true);
            old.replaceWith(node);
            init(node);
          }
        });
        document.title = doc.title;
        readBody(doc);
      })
      .catch(unreachable)
      .then(function () {
        refreshing = null;
        if (again) { again = false; refresh(); }
      });
  }

  // -- navigation: fetch, swap <main>, keep the document (and the alarm) ---------------------
  function swap(html, url, push) {
    var doc = new DOMParser().parseFromString(html, "text/html");
    ["header", "main", "#banner"].forEach(function (sel) {
      var now = document.querySelector(sel), fresh = doc.querySelector(sel);
      if (now && fresh) { now.replaceWith(document.importNode(fresh, true)); }
    });
    document.title = doc.title;
    document.documentElement.lang = doc.documentElement.lang;
    readBody(doc);
    if (push) { history.pushState({}, "", url); } else { history.replaceState({}, "", url); }
    window.scrollTo(0, 0);
    init(document.querySelector("main"));
    var focus = document.querySelector("main [autofocus]") || document.querySelector("main h1");
    if (focus) { focus.setAttribute("tabindex", "-1"); focus.focus(); }
  }

  function go(url, options, push) {
    fetch(url, Object.assign({ credentials: "same-origin", cache: "no-store" }, options))
      .then(function (r) {
        var type = r.headers.get("Content-Type") || "";
        if (type.indexOf("text/html") !== 0) {
          if (!options.method) { window.location.href = url; }
          return null;
        }
        return r.text().then(function (html) { swap(html, r.url, push && r.url !== location.href); });
      })
      .catch(function () {
        if (!options.method) { window.location.href = url; } else { unreachable(); }
      });
  }

  function ours(url) {
    return url.origin === location.origin && url.pathname.indexOf("/exports/") !== 0 &&
      url.pathname.indexOf("/api/") !== 0 && url.pathname.indexOf("/maps/") !== 0;
  }

  document.addEventListener("click", function (ev) {
    var a = ev.target.closest && ev.target.closest("a[href]");
    if (!a || ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) { return; }
    if (a.target || a.hasAttribute("download") || a.hasAttribute("data-plain")) { return; }
    var url = new URL(a.href, location.href);
    if (!ours(url) || (url.hash && url.pathname === location.pathname && url.search === location.search)) { return; }
    ev.preventDefault();
    go(url.href, {}, true);
  });

  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    if (ev.defaultPrevented || form.hasAttribute("data-plain")) { return; }
    var url = new URL(form.getAttribute("action") || location.href, location.href);
    if (!ours(url)) { return; }
    ev.preventDefault();
    var data = new FormData(form);
    if (ev.submitter && ev.submitter.name) { data.append(ev.submitter.name, ev.submitter.value); }
    var fields = new URLSearchParams(data);
    if ((form.getAttribute("method") || "get").toLowerCase() === "get") {
      url.search = fields.toString();
      go(url.href, {}, true);
    } else {
      go(url.href, { method: "POST", body: fields }, true);
    }
  });

  window.addEventListener("popstate", function () { go(location.href, {}, false); });

  // -- the local tile map (Leaflet from Debian's libjs-leaflet), loaded on the first map -----
  function withLeaflet(div, then) {
    if (window.L) { then(); return; }
    if (!document.querySelector("link[data-leaflet]")) {
      var css = document.createElement("link");
      css.rel = "stylesheet";
      css.href = div.dataset.leafletCss;
      css.dataset.leaflet = "1";
      document.head.appendChild(css);
    }
    var js = document.createElement("script");
    js.src = div.dataset.leafletJs;
    js.onload = then;
    js.onerror = function () { div.textContent = div.dataset.missing; };
    document.head.appendChild(js);
  }

  function drawMap(mapDiv) {
    withLeaflet(mapDiv, function () {
      if (!window.L) { mapDiv.textContent = mapDiv.dataset.missing; return; }
      var map = window.L.map(mapDiv);
      // Broadest map first, so a detailed town map is drawn over a country one.
      JSON.parse(mapDiv.dataset.layers).forEach(function (layer) {
        var options = { maxZoom: 19, minNativeZoom: layer.minNativeZoom, maxNativeZoom: layer.maxNativeZoom };
        if (layer.bounds) { options.bounds = layer.bounds; }
        window.L.tileLayer(layer.url, options).addTo(map);
      });
      if (mapDiv.dataset.points) { drawPoints(map, JSON.parse(mapDiv.dataset.points)); return; }
      var track = JSON.parse(mapDiv.dataset.track || "[]");
      var line = window.L.polyline(track, { color: "#b00020" }).addTo(map);
      var cell = JSON.parse(mapDiv.dataset.cell || "null");
      var bounds = line.getBounds();
      if (cell) {
        // A reduced-precision fix: the wearer is anywhere in this cell, not at its centre.
        var box = window.L.rectangle(cell, { color: "#b00020", weight: 2, fillOpacity: 0.15 }).addTo(map);
        bounds = bounds.extend(box.getBounds());
      } else if (track.length) {
        window.L.circleMarker(track[track.length - 1], { radius: 8 }).addTo(map);
      }
      map.fitBounds(bounds, { maxZoom: 15 });
    });
  }

  // The overview: each alert and bracelet a mark of its own, named, a link to its page. A live
  // update redraws the marks but keeps the view the coordinator zoomed to.
  // Each point's colour comes from the server (station/maps/grid.py COLOURS), as on the grid.
  function drawPoints(map, points) {
    var corners = [];
    points.forEach(function (p) {
      var colour = p.colour, mark;
      if (p.cell) {          // a reduced-precision fix: anywhere in the cell, not at its centre
        mark = window.L.rectangle(p.cell, { color: colour, weight: 2, fillOpacity: 0.15 });
        corners.push(p.cell[0], p.cell[1]);
      } else {
        mark = window.L.circleMarker([p.lat, p.lon], { radius: p.kind === "bracelet" ? 6 : 9, color: colour,
                                                         fillColor: colour, fillOpacity: 0.8 });
        corners.push([p.lat, p.lon]);
      }
      // A name typed into a node is text, never markup: Leaflet sets a string as innerHTML.
      var link = document.createElement("a"), name = document.createElement("span");
      link.href = p.href;
      link.textContent = name.textContent = p.label;
      mark.bindTooltip(name).bindPopup(link).addTo(map);
    });
    if (mapView && mapView.path === location.pathname) {
      map.setView(mapView.center, mapView.zoom);
    } else if (corners.length) {
      map.fitBounds(window.L.latLngBounds(corners).pad(0.2), { maxZoom: 15 });
    }
    map.on("moveend", function () { mapView = { path: location.pathname, center: map.getCenter(), zoom: map.getZoom() }; });
  }

  // -- start -----------------------------------------------------------------------------------
  readBody(document);
  lastEvent = parseInt(body.dataset.lastEvent || "0", 10);
  init(document);
  setInterval(ages, 1000);
  setInterval(poll, POLL_MS);
})();
