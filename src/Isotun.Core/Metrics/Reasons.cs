using System.Runtime.CompilerServices;
using System.Text;
using Isotun.Transport.Listening;

namespace Isotun.Metrics;

public enum AuthOutcome { Ok, BadPassword, UnknownUser, UnknownTenant, BadCertificate, WrongTenant, BadRequest, CookieRejected, TooManySessions, Throttled, Busy, Revoked }

public enum DropReason { SpoofedSource, Oversize, Malformed, NoSession, QueueFull, TunWriteFailed, CompressedNotNegotiated, ClientToClient, BadGsoHeader, GsoNotNegotiated, EastWest, OverBudget }

public enum CloseReason { HandshakeFailed, HandshakeTimeout, AuthTimeout, BadRequest, BadFrame, PeerClosed, DeadPeer, Replaced, UserDisconnect, Shutdown, Error, RequestTimeout, SlowBody, WriteTimeout, Revoked, NoData }

public enum HandshakeResult { Ok, Failed, Timeout }

/// <summary>A handshake that succeeded: a full one, or one resumed from a session ticket.</summary>
public enum HandshakeKind { Full, Resumed }

public enum AdminResult { Ok, Unauthorized, BadRequest, NotFound, BadMethod, Conflict, TooLarge, Error, WrongHost }

/// <summary>What a temporary login ban holds back: a source address (or IPv6 /64), or a user name.</summary>
public enum BanScope { Source, User }

/// <summary>The server's listeners: TLS, and PROXY v2 behind a gateway.</summary>
public enum ListenerName { Tls, Proxy }

/// <summary>A connection on the server's PROXY v2 listener: served, or why not (a cap is the client's, named in the header).</summary>
public enum ProxyResult { Accepted, Untrusted, Malformed, NotProxy, Timeout, ClosedEarly, Local, GlobalCap, SourceCap }

/// <summary>What the gateway read of a connection's ClientHello.</summary>
public enum HelloOutcome { Routed, NoRoute, NoSni, NotTls, TooLarge, Malformed, Timeout, ClosedEarly }

/// <summary>Why the gateway refused a connection: at accept (a limit, a ban), or for its ClientHello (no route for it).</summary>
public enum GatewayRejection { GlobalCap, IpConcurrency, IpRate, Banned, NoSni, NotTls, NoRoute }

/// <summary>A TLS handshake on a gateway route that terminates TLS.</summary>
public enum GatewayHandshake { Ok, Failed, Timeout, BadClientCertificate }

/// <summary>Why the gateway closed a relay itself.</summary>
public enum RelayClose { Idle }

/// <summary>What a gateway connection is doing: reading its ClientHello, then relaying as its route says.</summary>
public enum ConnectionMode { Preread, Passthrough, Terminate }

public enum ReloadResult { Ok, Refused }

/// <summary>
/// The label values of the server's metrics: each enum above is one label's values, and a value's label is its name in
/// kebab case (<c>QueueFull</c> is <c>queue-full</c>), with no exceptions. <see cref="Families"/> says which family
/// and label each enum fills; the operations guide's metrics table and <c>isotun doctor --metrics</c> read the same
/// values (a test holds the guide to them).
/// </summary>
public static class ReasonLabels
{
    /// <summary>
    /// A labelled family (as exported), one of its labels, that label's values, and the document (under docs/) whose
    /// metrics table describes it.
    /// </summary>
    public sealed record Family(string Name, string Label, IReadOnlyList<string> Values, string Doc = "operations.md");

    public static readonly IReadOnlyList<Family> Families =
    [
        new("isotun_auth_attempts_total", "result", All<AuthOutcome>()),
        new("isotun_tunnel_drops_total", "reason", All<DropReason>()),
        new("isotun_connections_closed_total", "reason", All<CloseReason>()),
        new("isotun_tls_handshakes_total", "result", All<HandshakeResult>()),
        new("isotun_tls_handshakes_total", "kind", All<HandshakeKind>()),
        new("isotun_admin_requests_total", "result", All<AdminResult>()),
        new("isotun_login_bans_total", "scope", All<BanScope>()),
        new("isotun_proxy_connections_total", "result", All<ProxyResult>()),
        new("isotun_listener_refused_total", "listener", All<ListenerName>()),
        // The TLS listener's own admission: the caps. The PROXY listener counts its refusals in isotun_proxy_connections.
        new("isotun_listener_refused_total", "reason", [AdmissionRefusal.GlobalCap.ToLabel(), AdmissionRefusal.SourceCap.ToLabel()]),
        new("isotun_listener_accept_errors_total", "error", All<AcceptFailure>()),
        new("isotun_gateway_clienthello_total", "outcome", All<HelloOutcome>(), "gateway.md"),
        new("isotun_gateway_rejected_total", "reason", All<GatewayRejection>(), "gateway.md"),
        new("isotun_gateway_accept_errors_total", "error", All<AcceptFailure>(), "gateway.md"),
        new("isotun_gateway_tls_handshakes_total", "result", All<GatewayHandshake>(), "gateway.md"),
        new("isotun_gateway_tls_handshakes_total", "kind", All<HandshakeKind>(), "gateway.md"),
        new("isotun_gateway_relays_closed_total", "reason", All<RelayClose>(), "gateway.md"),
        new("isotun_gateway_connections_active", "mode", All<ConnectionMode>(), "gateway.md"),
        new("isotun_gateway_reloads_total", "result", All<ReloadResult>(), "gateway.md"),
    ];

    /// <summary>The label of <paramref name="value"/>: its name in kebab case. No allocation (a table per enum).</summary>
    public static string ToLabel<T>(this T value) where T : struct, Enum
    {
        var labels = Table<T>.Labels;
        int i = Unsafe.As<T, int>(ref value);
        return (uint)i < (uint)labels.Length ? labels[i] : "other";
    }

    /// <summary>Every label of <typeparamref name="T"/>, in the enum's order.</summary>
    public static IReadOnlyList<string> All<T>() where T : struct, Enum => Table<T>.Labels;

    /// <summary>The value whose label is <paramref name="label"/>, as read back from a scrape.</summary>
    public static bool TryParse<T>(string? label, out T value) where T : struct, Enum
    {
        int i = label is null ? -1 : Array.IndexOf(Table<T>.Labels, label);
        value = i < 0 ? default : Enum.GetValues<T>()[i];
        return i >= 0;
    }

    public static string KebabCase(string name)
    {
        var sb = new StringBuilder(name.Length + 4);
        for (int i = 0; i < name.Length; i++)
        {
            if (char.IsUpper(name[i]) && i > 0) sb.Append('-');
            sb.Append(char.ToLowerInvariant(name[i]));
        }
        return sb.ToString();
    }

    // Enums with int values 0..n-1 in order, so a value indexes its label.
    private static class Table<T> where T : struct, Enum
    {
        public static readonly string[] Labels = Build();

        private static string[] Build()
        {
            var values = Enum.GetValues<T>();
            if (Enum.GetUnderlyingType(typeof(T)) != typeof(int)) throw new InvalidOperationException($"{typeof(T).Name}: a label enum must be int-based");
            for (int i = 0; i < values.Length; i++)
                if (Unsafe.As<T, int>(ref values[i]) != i) throw new InvalidOperationException($"{typeof(T).Name}: a label enum's values must be 0, 1, 2, ... in order");
            return [.. values.Select(v => KebabCase(v.ToString()))];
        }
    }
}
