"""SMS through a USB GSM modem, with python-gsmmodem-new speaking its AT commands over pyserial.

Why this library and not ModemManager over D-Bus: the station must work on a bare Raspberry Pi
OS Lite image with no network manager and no system bus service to configure, and a technician
must be able to see what goes to the modem (every AT command is on the serial line, and our
tests replay it against a virtual modem on a pty). ModemManager would also grab the radio's own
USB serial port while probing for modems, which is exactly the port the station needs.

PDU mode (the library's default), so that a wearer's name in any script arrives as written (UCS-2
when GSM-7 cannot carry it). Delivery reports are asked for (AT+CSMP / TP-SRR): a report of
delivery marks the notification `delivered`; a reply from a responder's number goes to the
escalation, which acknowledges only with the alert's reference (a sender number can be forged).
The modem is opened on first use and opened again after any serial error (unplugged, reset)."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Callable

from station.escalation.channels import ChannelError, Outgoing, read_secret

log = logging.getLogger(__name__)
NO_SIGNAL = 99           # +CSQ: 99 is "not known or not detectable"


@dataclass
class Sms:
    port: str
    baud: int = 115200
    pin: str | None = None
    timeout_s: float = 30.0
    on_reply: Callable[[str, str], None] | None = None
    on_delivered: Callable[[str, bool, str], None] | None = None
    name: str = "sms"
    sweep: bool = True            # the sender calls poll() soon (at start: what waited in the SIM)
    _modem: object = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _report_missed: bool = field(default=False, repr=False)

    @classmethod
    def from_config(cls, cfg, *, on_reply=None, on_delivered=None) -> "Sms":
        s = cfg.sms
        pin = read_secret(s["pin_file"], cfg.base_dir, "[sms] pin_file") if s["pin_file"] else None
        return cls(s["port"], s["baud"], pin, s["timeout_s"], on_reply, on_delivered)

    def _open(self):
        from gsmmodem.exceptions import IncorrectPinError, PinRequiredError, PukRequiredError, TimeoutException
        from serial import SerialException
        modem = _modem_class()(self.port, self.baud, smsReceivedCallbackFunc=self._received,
                               smsStatusReportCallback=self._report, requestDelivery=True)
        modem.station_missed = self._missed
        try:
            modem.connect(self.pin)
        except PinRequiredError:
            modem.close()
            raise ChannelError("the modem's SIM card asks for its PIN: put it in the file [sms] pin_file names",
                               retry=False) from None
        except IncorrectPinError:
            modem.close()
            # Never tried again: three wrong PINs lock the SIM behind its PUK.
            raise ChannelError("the SIM card refused the PIN in [sms] pin_file; not tried again", retry=False) from None
        except PukRequiredError:
            modem.close()
            raise ChannelError("the SIM card is locked and asks for its PUK", retry=False) from None
        except TimeoutException:
            modem.close()
            raise ChannelError(f"the modem on {self.port} does not answer") from None
        except (SerialException, OSError) as e:
            raise ChannelError(f"no modem on {self.port}: {e}") from None
        except Exception as e:
            try:
                modem.close()
            except Exception:
                pass
            raise ChannelError(f"the modem on {self.port} could not be set up: {type(e).__name__}: {e}") from None
        return modem

    def send(self, message: Outgoing) -> str | None:
        from gsmmodem.exceptions import CmsError, CommandError, TimeoutException
        with self._lock:
            if self._modem is None:
                self._modem = self._open()
            modem = self._modem
            try:
                if modem.signalStrength in (NO_SIGNAL, -1):
                    raise ChannelError("the modem has no signal")
                sent = modem.sendSms(message.address, message.text)
            except ChannelError:
                raise
            except CmsError as e:
                # 3xx codes are the network's or the SIM's: worth retrying (no service, memory full...).
                raise ChannelError(f"the network refused the SMS: +CMS ERROR {e.code}") from None
            except (CommandError, TimeoutException) as e:
                self._drop()
                raise ChannelError(f"the modem did not send it: {type(e).__name__}") from None
            except Exception as e:        # a serial error: unplugged, reset
                self._drop()
                raise ChannelError(f"the modem on {self.port} failed: {type(e).__name__}: {e}") from None
        return str(sent.reference)

    def poll(self) -> None:
        """Replies the modem holds unread: those that came while the station was off, and a second
        one whose +CMTI came in the same burst as the first (the library reads only the first)."""
        with self._lock:
            if self._modem is None:
                try:
                    self._modem = self._open()
                except ChannelError as e:
                    log.debug("SMS poll: %s", e.reason)
                    return
            try:
                from gsmmodem.modem import ReceivedSms, Sms as Stored
                found = self._modem.listStoredSms(status=Stored.STATUS_RECEIVED_UNREAD, delete=True)
            except Exception as e:
                log.info("reading the modem's stored messages failed: %s", e)
                self._drop()
                return
            if self._report_missed:
                # Most modems keep delivery reports apart, in "SR" (what +CDSI names).
                self._report_missed = False
                try:
                    found += self._modem.listStoredSms(status=Stored.STATUS_RECEIVED_UNREAD, memory="SR", delete=True)
                except Exception as e:
                    log.info("reading the modem's stored delivery reports failed: %s", e)
        from gsmmodem.modem import StatusReport
        for sms in found:
            if isinstance(sms, ReceivedSms):
                self._received(sms)
            elif isinstance(sms, StatusReport):
                self._report(sms)      # one whose notification could not be read at the time

    def _missed(self, what: str, error: Exception) -> None:
        log.warning("the modem announced %s but it could not be read (%s: %s); it stays on the SIM and is read at "
                    "the next poll", what, type(error).__name__, error)
        self._report_missed = self._report_missed or what == "a delivery report"
        self.sweep = True

    def _drop(self) -> None:
        modem, self._modem = self._modem, None
        if modem is not None:
            try:
                modem.close()
            except Exception:
                pass

    def _received(self, sms) -> None:
        log.info("SMS received from %s", sms.number)
        if self.on_reply is not None:
            self.on_reply(sms.number or "", sms.text or "")
        self.sweep = True          # others may have come in the same burst

    def _report(self, report) -> None:
        if self.on_delivered is not None:
            from gsmmodem.modem import StatusReport
            ok = report.deliveryStatus == StatusReport.DELIVERED
            self.on_delivered(str(report.reference), ok, "" if ok else f"delivery failed (status {report.deliveryStatus})")

    def close(self) -> None:
        with self._lock:
            self._drop()


def _modem_class():
    """GsmModem, with each notification's read guarded. The library reads a new message or a
    delivery report on a short thread of its own (AT+CMGR); when that read times out (the modem
    busy with a send) the thread dies with a traceback and the message is forgotten. Here the
    channel is told, and its next poll reads what the SIM still holds."""
    from gsmmodem.modem import GsmModem

    class StationModem(GsmModem):
        station_missed: Callable[[str, Exception], None] = staticmethod(lambda what, error: None)

        def _handleSmsReceived(self, notificationLine):
            try:
                return super()._handleSmsReceived(notificationLine)
            except Exception as e:
                self.station_missed("a new SMS", e)

        def _handleSmsStatusReport(self, notificationLine):
            try:
                return super()._handleSmsStatusReport(notificationLine)
            except Exception as e:
                self.station_missed("a delivery report", e)
    return StationModem
