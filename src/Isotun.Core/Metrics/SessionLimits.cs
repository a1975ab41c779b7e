namespace Isotun.Metrics;

/// <summary>The live session limits, read at scrape time: <c>limits.max-sessions</c> and each tenant's.</summary>
public sealed record SessionLimits(int ServerMax, IReadOnlyList<TenantSessionLimit> Tenants);
