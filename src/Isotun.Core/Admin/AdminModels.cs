using Isotun.Server;

namespace Isotun.Admin;

/// <summary>The JSON shapes of the admin API (version 1). Field names are camelCase on the wire.</summary>
public sealed record StatusView(string Version, DateTimeOffset Started, long UptimeSeconds, string? Listen, int Tenants, int Sessions,
    int ConnectedSessions, int RevokedUsers, int BannedSources, int BannedUsers, bool Ready, ClusterView? Cluster, CookieKeysView CookieKeys);

/// <summary>
/// The cookie keys: the one sealing now (its id, since when), how many the ring holds (older ones still open their
/// cookies), and when the next rotation is due.
/// </summary>
public sealed record CookieKeysView(uint Sealing, DateTimeOffset SealingSince, int Keys, DateTimeOffset NextRotation);

/// <summary>This node's link to the cluster's shared store: reachable or not, changes waiting to be written, the last error.</summary>
public sealed record ClusterView(string Node, bool Connected, int PendingWrites, long Revision, string? LastError, SharedTenantsView? Tenants);

public sealed record TenantView(string Name, string? Namespace, string Pool, string? Pool6, int Sessions, int MaxSessions, int MaxSessionsPerUser,
    IReadOnlyList<SiteView> Sites);

/// <summary>A site: its subnets, the session carrying it (null while none), and the bytes from and to its subnets.</summary>
public sealed record SiteView(string Name, string User, IReadOnlyList<string> Subnets, string? Session, long RxBytes, long TxBytes);

public sealed record SessionView(string Id, string Tenant, string User, string? Address, string? Address6, string? Source, DateTimeOffset Since,
    DateTimeOffset Expires, bool Connected, int Queues, string Extensions, string? ClientVersion,
    long RxBytes, long RxPackets, long TxBytes, long TxPackets, SiteView? Site);

public sealed record KickResult(string Id, bool Kicked);

public sealed record RevokeResult(string Tenant, string User, int SessionsEnded);

public sealed record EnableResult(string Tenant, string User, bool WasRevoked);

public sealed record UnbanRequest(string? Source, string? Tenant, string? User);

public sealed record UnbanResult(bool Unbanned);

public sealed record ReloadResult(bool Applied, IReadOnlyList<string> Report);

public sealed record ErrorView(string Error);
