namespace Isotun.Metrics;

public enum AuthOutcome { Ok, BadPassword, UnknownUser, UnknownTenant, BadCertificate, WrongTenant, BadRequest, CookieRejected, TooManySessions, Throttled, Busy, Revoked }

public enum DropReason { SpoofedSource, Oversize, Malformed, NoSession, QueueFull, TunWriteFailed, Compressed, ClientToClient, BadGso, GsoNotNegotiated, EastWest, OverBudget }

public enum CloseReason { HandshakeFailed, HandshakeTimeout, AuthTimeout, BadRequest, BadFrame, PeerClosed, DeadPeer, Replaced, UserDisconnect, Shutdown, Error, RequestTimeout, SlowBody, WriteTimeout, Revoked, NoData }

public static class ReasonLabels
{
    public static string ToLabel(this AuthOutcome o) => o switch
    {
        AuthOutcome.Ok => "ok",
        AuthOutcome.BadPassword => "bad-password",
        AuthOutcome.UnknownUser => "unknown-user",
        AuthOutcome.UnknownTenant => "unknown-tenant",
        AuthOutcome.BadCertificate => "bad-certificate",
        AuthOutcome.WrongTenant => "wrong-tenant",
        AuthOutcome.BadRequest => "bad-request",
        AuthOutcome.CookieRejected => "cookie-rejected",
        AuthOutcome.TooManySessions => "too-many-sessions",
        AuthOutcome.Throttled => "throttled",
        AuthOutcome.Busy => "busy",
        AuthOutcome.Revoked => "revoked",
        _ => "other",
    };

    public static string ToLabel(this DropReason r) => r switch
    {
        DropReason.SpoofedSource => "spoofed-source",
        DropReason.Oversize => "oversize",
        DropReason.Malformed => "malformed",
        DropReason.NoSession => "no-session",
        DropReason.QueueFull => "queue-full",
        DropReason.OverBudget => "over-budget",
        DropReason.TunWriteFailed => "tun-write-failed",
        DropReason.Compressed => "compressed-not-negotiated",
        DropReason.ClientToClient => "client-to-client",
        DropReason.EastWest => "east-west",
        DropReason.BadGso => "bad-gso-header",
        DropReason.GsoNotNegotiated => "gso-not-negotiated",
        _ => "other",
    };

    public static string ToLabel(this CloseReason r) => r switch
    {
        CloseReason.HandshakeFailed => "handshake-failed",
        CloseReason.HandshakeTimeout => "handshake-timeout",
        CloseReason.AuthTimeout => "auth-timeout",
        CloseReason.BadRequest => "bad-request",
        CloseReason.BadFrame => "bad-frame",
        CloseReason.PeerClosed => "peer-closed",
        CloseReason.DeadPeer => "dead-peer",
        CloseReason.Replaced => "replaced",
        CloseReason.UserDisconnect => "user-disconnect",
        CloseReason.Shutdown => "shutdown",
        CloseReason.RequestTimeout => "request-timeout",
        CloseReason.SlowBody => "slow-body",
        CloseReason.WriteTimeout => "write-timeout",
        CloseReason.Revoked => "revoked",
        CloseReason.NoData => "no-data",
        _ => "error",
    };
}
