namespace Isotun.Protocol.Auth;

/// <summary>A form <c>&lt;select&gt;</c>, typically the group (tenant) list <c>group_list</c>.</summary>
public sealed record AuthSelect(string Name, string Label, IReadOnlyList<AuthOption> Options);
