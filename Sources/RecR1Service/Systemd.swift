import CRecR1Support

/// The sd_notify protocol (`Type=notify` units): recr1d itself tells systemd it is ready or stopping.
/// Without `$NOTIFY_SOCKET` (not under systemd) every call is a no-op.
public enum Systemd {
    /// Sends e.g. "READY=1" or "STOPPING=1"; returns whether systemd was told.
    @discardableResult
    public static func notify(_ state: String) -> Bool { recr1_sd_notify(state) > 0 }
}
