namespace Isotun.Protocol.Auth;

/// <summary>Outcome of parsing an aggregate-auth (<c>config-auth</c>) XML body.</summary>
public enum AuthXmlResult
{
    /// <summary>Parsed.</summary>
    Ok,

    /// <summary>The body is empty or only whitespace.</summary>
    Empty,

    /// <summary>The body exceeds <see cref="AuthXml.MaxBodyBytes"/>.</summary>
    TooLarge,

    /// <summary>Not well-formed XML, not UTF-8, too deep, too many elements, or missing required attributes.</summary>
    Malformed,

    /// <summary>The body contains a DOCTYPE; DTDs (and so entity tricks) are never processed.</summary>
    DtdProhibited,

    /// <summary>Well-formed XML whose root is not <c>config-auth</c>.</summary>
    NotConfigAuth,
}
