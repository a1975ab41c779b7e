namespace Isotun.Protocol.Auth;

/// <summary>One <c>&lt;option value=".."&gt;label&lt;/option&gt;</c> of a form select.</summary>
public sealed record AuthOption(string Value, string Label);
