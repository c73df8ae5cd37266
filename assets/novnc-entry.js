import RFB from "@novnc/novnc/lib/rfb.js"; window.RFB = RFB;
