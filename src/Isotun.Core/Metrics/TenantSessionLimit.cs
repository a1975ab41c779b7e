namespace Isotun.Metrics;

/// <summary>A tenant's <c>max-sessions</c> and the sessions it holds against it (live or waiting for a reconnect).</summary>
public readonly record struct TenantSessionLimit(string Tenant, int Max, int Held);
