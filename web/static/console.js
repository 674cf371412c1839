// Live updates and the alarm. No inline script anywhere (the Content-Security-Policy forbids it).
(function () {
  "use strict";
  var body = document.body;
  var unacked = parseInt(body.dataset.unacked || "0", 10);

  document.querySelectorAll("time[data-ts]").forEach(function (t) {
    var d = new Date(parseFloat(t.dataset.ts) * 1000);
    t.textContent = d.toLocaleString();
  });

  // The alarm: a browser may play sound only after a click, so the first click turns it on.
  var audio = null, beeping = null;
  function beep() {
    if (!audio) { return; }
    var osc = audio.createOscillator(), gain = audio.createGain();
    osc.frequency.value = 880; gain.gain.value = 0.3;
    osc.connect(gain); gain.connect(audio.destination);
    osc.start(); osc.stop(audio.currentTime + 0.25);
  }
  var button = document.getElementById("sound");
  if (button && unacked > 0) {
    button.hidden = false;
    button.addEventListener("click", function () {
      audio = new (window.AudioContext || window.webkitAudioContext)();
      button.hidden = true;
      beep(); beeping = setInterval(beep, 1000);
    });
  }

  // The local tile map, when the office imported one (Leaflet from Debian's libjs-leaflet).
  var mapDiv = document.getElementById("map");
  if (mapDiv) {
    window.addEventListener("load", function () {
      if (!window.L) { mapDiv.textContent = mapDiv.dataset.missing; return; }
      var track = JSON.parse(mapDiv.dataset.track || "[]");
      var map = window.L.map(mapDiv);
      // Broadest map first, so a detailed town map is drawn over a country one.
      JSON.parse(mapDiv.dataset.layers).forEach(function (layer) {
        var options = { maxZoom: 19, minNativeZoom: layer.minNativeZoom, maxNativeZoom: layer.maxNativeZoom };
        if (layer.bounds) { options.bounds = layer.bounds; }
        window.L.tileLayer(layer.url, options).addTo(map);
      });
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

  // New events (a new alert, an acknowledgement) arrive over Server-Sent Events.
  if (window.EventSource && body.dataset.page) {
    var source = new EventSource("/api/stream");
    var pending = null;
    source.addEventListener("incident", function () {
      if (pending) { return; }
      pending = setTimeout(function () { window.location.reload(); }, 200);
    });
  }
})();
