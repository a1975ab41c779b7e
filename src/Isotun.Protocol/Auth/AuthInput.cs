namespace Isotun.Protocol.Auth;

/// <summary>A form <c>&lt;input&gt;</c>. <see cref="Type"/> is <c>text</c>, <c>password</c> or <c>hidden</c> (as sent).</summary>
public sealed record AuthInput(string Type, string Name, string Label);
