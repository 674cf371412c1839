"""A virtual USB GSM modem on a pseudo-terminal: the device side of the AT commands a real modem
(SIMCom SIM800/SIM7600, Huawei E3372 in serial mode) answers, as 3GPP TS 27.005/27.007 define
them: PDU-mode SMS (AT+CMGF=0), AT+CMGS with the "> " prompt and Ctrl-Z, +CMTI for a new
message, +CDSI for a delivery report stored in "SR", AT+CMGR / AT+CMGD, AT+CPIN, AT+CSQ.

Its PDUs are built and read here, from TS 23.040, not with the library under test, so that a
mistake in the library's encoding would show. Switchable faults: `pin` (SIM PIN required),
`signal` (0-31, or 99: none), `refuse` (a +CMS ERROR for the next sends), `silent`, `lose_reads`."""

from __future__ import annotations

import os
import pty
import select
import threading
import time
import tty
from dataclasses import dataclass

# GSM 03.38 default alphabet for the characters a reply uses; others go as UCS-2.
GSM7 = {c: i for i, c in enumerate("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
                                    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")}
GSM7_BACK = {i: c for c, i in GSM7.items()}


def _semi_octets(digits: str) -> bytes:
    if len(digits) % 2:
        digits += "F"
    return bytes(int(digits[i + 1] + digits[i], 16) for i in range(0, len(digits), 2))


def _address(number: str) -> bytes:
    digits = number.lstrip("+")
    return bytes([len(digits), 0x91 if number.startswith("+") else 0x81]) + _semi_octets(digits)


def _read_address(data: bytes, i: int) -> tuple[str, int]:
    n, kind = data[i], data[i + 1]
    octets = (n + 1) // 2
    raw = data[i + 2:i + 2 + octets].hex().upper()
    digits = "".join(raw[j + 1] + raw[j] for j in range(0, len(raw), 2))[:n]
    return ("+" if kind == 0x91 else "") + digits, i + 2 + octets


def _timestamp(at: float) -> bytes:
    t = time.gmtime(at)
    fields = [t.tm_year % 100, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec, 0]
    return b"".join(_semi_octets(f"{f:02d}") for f in fields)


def _pack7(text: str) -> tuple[int, bytes]:
    septets = [GSM7[c] for c in text]
    bits, nbits, out = 0, 0, bytearray()
    for s in septets:
        bits |= s << nbits
        nbits += 7
        while nbits >= 8:
            out.append(bits & 0xFF)
            bits >>= 8
            nbits -= 8
    if nbits:
        out.append(bits & 0xFF)
    return len(septets), bytes(out)


def _unpack7(data: bytes, count: int, skip_bits: int = 0) -> str:
    bits = int.from_bytes(data, "little") >> skip_bits
    return "".join(GSM7_BACK.get((bits >> (7 * i)) & 0x7F, "?") for i in range(count))


def deliver_pdu(sender: str, text: str, at: float) -> str:
    """SMS-DELIVER (TS 23.040 9.2.2.1), with no SMSC address."""
    if all(c in GSM7 for c in text):
        dcs, (udl, ud) = 0x00, _pack7(text)
    else:
        ud = text.encode("utf-16-be")
        dcs, udl = 0x08, len(ud)
    return (b"\x00" + bytes([0x04]) + _address(sender) + bytes([0x00, dcs]) + _timestamp(at) + bytes([udl]) +
            ud).hex().upper()


def status_report_pdu(reference: int, recipient: str, sent: float, done: float, status: int) -> str:
    """SMS-STATUS-REPORT (TS 23.040 9.2.2.3): status 0 delivered, 0x44 (68) failed."""
    return (b"\x00" + bytes([0x06, reference]) + _address(recipient) + _timestamp(sent) + _timestamp(done) +
            bytes([status])).hex().upper()


def read_submit(pdu_hex: str) -> tuple[str, str, bool]:
    """(recipient, text, delivery report asked) of an SMS-SUBMIT (TS 23.040 9.2.2.2)."""
    data = bytes.fromhex(pdu_hex)
    i = 1 + data[0]                        # past the SMSC field
    first = data[i]
    srr = bool(first & 0x20)
    udhi = bool(first & 0x40)
    vpf = (first >> 3) & 0x03
    i += 2                                 # first octet, message reference
    number, i = _read_address(data, i)
    dcs = data[i + 1]
    i += 2
    i += {0: 0, 2: 1, 3: 7, 1: 7}[vpf]
    udl = data[i]
    ud = data[i + 1:]
    if dcs & 0x0C == 0x08:
        body = ud[1 + ud[0]:] if udhi else ud
        return number, body.decode("utf-16-be"), srr
    if udhi:
        header = ud[0] + 1
        skip = (7 - (header * 8) % 7) % 7
        return number, _unpack7(ud[header:], udl - (header * 8 + skip) // 7, skip), srr
    return number, _unpack7(ud, udl), srr


@dataclass
class Sent:
    reference: int
    number: str
    text: str
    report_asked: bool
    at: float


class VirtualModem:
    def __init__(self, path: str, *, pin: str | None = None, signal: int = 20, operator_number: str = "+221770000000"):
        self.path = path
        self.pin = pin                    # the SIM asks for it until it is given
        self.unlocked = pin is None
        self.signal = signal
        self.refuse: int | None = None    # a +CMS ERROR code for every send while set
        self.silent = False               # answers nothing (a modem that hung)
        self.deliver = True               # delivery reports come back
        self.lose_reads = 0               # the next AT+CMGR get no answer (busy with something else)
        self.operator_number = operator_number
        self.sent: list[Sent] = []
        self.commands: list[str] = []
        self.wrong_pins = 0
        self.charset = "GSM"              # AT+CSCS: the TE character set (PDU mode ignores it for the text)
        self._store: dict[int, list] = {}   # index -> [stat, pdu]: 0 received unread, 1 read
        self._ref = 0
        self._index = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._master, slave = pty.openpty()
        tty.setraw(slave)
        self._slave = slave               # held open so the pty survives the station closing it
        if os.path.lexists(path):
            os.unlink(path)
        os.symlink(os.ttyname(slave), path)
        self._thread = threading.Thread(target=self._run, name="virtual-modem", daemon=True)

    def start(self) -> "VirtualModem":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)
        for fd in (self._master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass
        if os.path.lexists(self.path):
            os.unlink(self.path)

    # -- the network side --------------------------------------------------------------------
    def receive_sms(self, sender: str, text: str) -> None:
        """An SMS from `sender` arrives: stored, and announced with +CMTI."""
        with self._lock:
            self._index += 1
            self._store[self._index] = [0, deliver_pdu(sender, text, time.time())]
            index = self._index
        self._write(f'\r\n+CMTI: "ME",{index}\r\n')

    def _report(self, s: Sent, status: int) -> None:
        with self._lock:
            self._index += 1
            self._store[self._index] = [0, status_report_pdu(s.reference, s.number, s.at, time.time(), status)]
            index = self._index
        self._write(f'\r\n+CDSI: "SR",{index}\r\n')

    def report_delivered(self, s: Sent) -> None:
        self._report(s, 0x00)

    def report_failed(self, s: Sent) -> None:
        self._report(s, 0x44)

    # -- the serial side ---------------------------------------------------------------------
    def _write(self, text: str) -> None:
        try:
            os.write(self._master, text.encode("latin-1", "replace"))
        except OSError:
            pass

    def _run(self) -> None:
        buf = b""
        pending_pdu: int | None = None
        while not self._stop.is_set():
            ready, _, _ = select.select([self._master], [], [], 0.1)
            if not ready:
                continue
            try:
                chunk = os.read(self._master, 4096)
            except OSError:
                time.sleep(0.05)
                continue
            buf += chunk
            while True:
                if pending_pdu is not None:
                    if b"\x1a" not in buf:
                        break
                    pdu, _, buf = buf.partition(b"\x1a")
                    pending_pdu = None
                    self._submit(pdu.decode("ascii", "replace").strip())
                    continue
                if b"\r" not in buf:
                    break
                line, _, buf = buf.partition(b"\r")
                command = line.decode("ascii", "replace").strip()
                if not command:
                    continue
                self.commands.append(command)
                if self.silent:
                    continue
                if command.upper().startswith("AT+CMGS="):
                    if not self.unlocked:
                        self._write("\r\n+CMS ERROR: 311\r\n")        # SIM PIN required
                        continue
                    pending_pdu = int(command.split("=", 1)[1])
                    self._write("\r\n> ")
                    continue
                self._write(self._answer(command))

    def _submit(self, pdu: str) -> None:
        if self.refuse is not None:
            self._write(f"\r\n+CMS ERROR: {self.refuse}\r\n")
            return
        if self.signal == 99:
            self._write("\r\n+CMS ERROR: 331\r\n")      # no network service
            return
        number, text, srr = read_submit(pdu)
        with self._lock:
            self._ref = (self._ref + 1) % 256
            s = Sent(self._ref, number, text, srr, time.time())
            self.sent.append(s)
        self._write(f"\r\n+CMGS: {s.reference}\r\n\r\nOK\r\n")
        if srr and self.deliver:
            threading.Timer(0.05, self.report_delivered, args=(s,)).start()

    def _answer(self, command: str) -> str:
        c = command.upper()
        ok = "\r\nOK\r\n"
        if c.startswith("AT+CPIN?"):
            return f"\r\n+CPIN: {'READY' if self.unlocked else 'SIM PIN'}\r\n" + ok
        if c.startswith("AT+CPIN="):
            given = command.split("=", 1)[1].strip('"')
            if given == self.pin:
                self.unlocked = True
                return ok
            self.wrong_pins += 1
            return "\r\n+CME ERROR: 16\r\n"                  # incorrect password
        if c == "AT+CSQ":
            return f"\r\n+CSQ: {self.signal},99\r\n" + ok
        if c == "AT+CFUN?":
            return "\r\n+CFUN: 1\r\n" + ok
        if c == "AT+CLAC":
            return "\r\n+CLAC: +CGMI,+CGMM,+CGMR,+CMGS,+CMGR,+CMGD,+CPMS,+CNMI,+CSQ,+CPIN,+CSCA,+CMGF,+CSCS\r\n" + ok
        if c == "AT+CSCS=?":
            return '\r\n+CSCS: ("GSM","UCS2","IRA")\r\n' + ok
        if c == "AT+CSCS?":
            return f'\r\n+CSCS: "{self.charset}"\r\n' + ok
        if c.startswith("AT+CSCS="):
            self.charset = command.split("=", 1)[1].strip('"')
            return ok
        if c == "AT+CGMI":
            return "\r\nVirtual\r\n" + ok
        if c == "AT+CGMM":
            return "\r\nVM-800\r\n" + ok
        if c == "AT+CGMR":
            return "\r\nRevision:1418B05\r\n" + ok
        if c == "AT+CSCA?":
            return f'\r\n+CSCA: "{self.operator_number}",145\r\n' + ok
        if c == "AT+CPMS=?":
            return '\r\n+CPMS: ("ME","SM","SR"),("ME","SM"),("ME","SM")\r\n' + ok
        if c.startswith("AT+CPMS="):
            return "\r\n+CPMS: 0,50,0,50,0,50\r\n" + ok
        if c.startswith("AT+CMGR=") and self.lose_reads:
            self.lose_reads -= 1
            return ""
        if c.startswith("AT+CMGR="):
            with self._lock:
                stored = self._store.get(int(c.split("=", 1)[1]))
                if stored is None:
                    return "\r\n+CMS ERROR: 321\r\n"           # invalid memory index
                stat, pdu = stored
                stored[0] = 1                                    # read now
            return f"\r\n+CMGR: {stat},,{len(pdu) // 2 - 1}\r\n{pdu}\r\n" + ok
        if c.startswith("AT+CMGL="):
            want = int(c.split("=", 1)[1])
            with self._lock:
                listed = [(i, st, pdu) for i, (st, pdu) in sorted(self._store.items()) if want == 4 or st == want]
                for i, _, _ in listed:
                    self._store[i][0] = 1
            return "".join(f"\r\n+CMGL: {i},{st},,{len(pdu) // 2 - 1}\r\n{pdu}" for i, st, pdu in listed) + \
                "\r\n" + ok
        if c.startswith("AT+CMGD="):
            with self._lock:
                self._store.pop(int(c.split("=", 1)[1].split(",")[0]), None)
            return ok
        if c.startswith("AT+CREG?"):
            return f"\r\n+CREG: 0,{0 if self.signal == 99 else 1}\r\n" + ok
        return ok          # ATZ, ATE0, AT+CMEE=1, AT+CMGF=0, AT+CNMI=..., AT+CSMP=..., AT+CLIP=1 ...
