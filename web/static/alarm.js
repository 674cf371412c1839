// The console's alarm. Once switched on it stays on: the console never reloads the page (see
// console.js), so the sound permission the click gave lives as long as the tab. It rings for as
// long as an alert is unacknowledged, at once for each new one, with its own pattern for a
// duress; when the tab is hidden it also shows a system notification and vibrates a phone.
// window.stationAlarm is the page's one alarm; console.js feeds it the open alerts.
(function () {
  "use strict";
  var REPEAT_MS = 2000;
  var PATTERNS = {
    // Plain alert: one long tone. Duress: three short high tones, unmistakable from across a room.
    alert: [[880, 0, 0.35]],
    duress: [[1320, 0, 0.12], [1320, 0.18, 0.12], [1320, 0.36, 0.12]]
  };
  var VIBRATE = { alert: [400, 200, 400], duress: [150, 80, 150, 80, 150, 80, 600] };

  var alarm = {
    audio: null, wanted: false, rings: 0, lastPattern: null, notified: [], open: [], duress: [],
    heard: {}, timer: null
  };

  function button() { return document.getElementById("sound"); }

  function show() {
    var b = button(), note = document.getElementById("alarm-note");
    if (!b) { return; }
    var sounding = alarm.audio && alarm.audio.state === "running";
    b.setAttribute("aria-pressed", alarm.wanted ? "true" : "false");
    b.classList.toggle("on", alarm.wanted && sounding);
    b.classList.toggle("rearm", alarm.wanted && !sounding);
    b.textContent = alarm.wanted ? (sounding ? b.dataset.on : b.dataset.rearm) : b.dataset.off;
    if (note) { note.textContent = ""; }
  }

  function tone(freq, at, length) {
    var ctx = alarm.audio, osc = ctx.createOscillator(), gain = ctx.createGain();
    osc.frequency.value = freq;
    gain.gain.value = 0.3;
    osc.connect(gain);
    gain.connect(ctx.destination);
    osc.start(ctx.currentTime + at);
    osc.stop(ctx.currentTime + at + length);
  }

  function ring() {
    var pattern = alarm.duress.length ? "duress" : "alert";
    alarm.rings += 1;
    alarm.lastPattern = pattern;
    if (alarm.audio && alarm.audio.state === "running") {
      PATTERNS[pattern].forEach(function (t) { tone(t[0], t[1], t[2]); });
    }
    if (document.hidden && navigator.vibrate) { navigator.vibrate(VIBRATE[pattern]); }
  }

  function tick() {
    if (alarm.wanted && alarm.open.length) { ring(); }
  }

  function notify(id, duress) {
    var b = button();
    if (!window.Notification || Notification.permission !== "granted" || !document.hidden || !b) { return; }
    // requireInteraction: the notification stays until someone looks, like the buzzer.
    var n = new Notification(duress ? b.dataset.duressTitle : b.dataset.title,
                             { body: "#" + id, tag: "alert-" + id, requireInteraction: true });
    n.onclick = function () { window.focus(); n.close(); };
    alarm.notified.push(id);
  }

  function start() {
    if (!alarm.audio) {
      var Ctx = window.AudioContext || window.webkitAudioContext;
      if (Ctx) { alarm.audio = new Ctx(); }
    }
    if (alarm.audio && alarm.audio.state !== "running") {
      alarm.audio.resume().then(show, show);
    }
  }

  function turnOn() {
    alarm.wanted = true;
    sessionStorage.setItem("station-alarm", "on");
    start();
    if (window.Notification && Notification.permission === "default") { Notification.requestPermission(); }
    if (alarm.open.length) { ring(); }
    show();
  }

  function turnOff() {
    alarm.wanted = false;
    sessionStorage.removeItem("station-alarm");
    show();
  }

  // The open alerts (ids), from the page or its poll: a new id rings at once, before the repeat.
  function update(open, duress) {
    alarm.open = open;
    alarm.duress = duress;
    var fresh = open.filter(function (id) { return !alarm.heard[id]; });
    open.forEach(function (id) { alarm.heard[id] = true; });
    if (fresh.length && alarm.wanted) {
      ring();
      fresh.forEach(function (id) { notify(id, duress.indexOf(id) >= 0); });
    }
  }

  function state() {
    return { wanted: alarm.wanted, audio: alarm.audio ? alarm.audio.state : "none", rings: alarm.rings,
             lastPattern: alarm.lastPattern, open: alarm.open.slice(), notified: alarm.notified.slice() };
  }

  document.addEventListener("DOMContentLoaded", function () {
    var b = button();
    if (!b) { return; }
    b.addEventListener("click", function () { if (alarm.wanted && alarm.audio && alarm.audio.state === "running") { turnOff(); } else { turnOn(); } });
    // Reloaded by hand with the alarm on: a browser lets sound start only after a gesture, so
    // the first click or key anywhere re-arms it, and the button says so meanwhile.
    if (sessionStorage.getItem("station-alarm") === "on") {
      alarm.wanted = true;
      var rearm = function (ev) {
        if (ev.target === b) { return; }
        start();
        document.removeEventListener("pointerdown", rearm, true);
        document.removeEventListener("keydown", rearm, true);
      };
      document.addEventListener("pointerdown", rearm, true);
      document.addEventListener("keydown", rearm, true);
    }
    show();
    alarm.timer = setInterval(tick, REPEAT_MS);
  });

  window.stationAlarm = { update: update, state: state, turnOn: turnOn, turnOff: turnOff };
})();
