namespace Isotun.Protocol.Http;

/// <summary>Outcome of <see cref="HttpHeadParser"/>.</summary>
public enum HttpParseResult
{
    /// <summary>A complete, valid head was parsed.</summary>
    Ok,

    /// <summary>The blank line ending the head has not arrived yet.</summary>
    NeedMore,

    /// <summary>The head exceeds the byte limit or <see cref="HttpHeadParser.MaxHeaderCount"/>.</summary>
    TooLarge,

    /// <summary>The head violates the grammar; the connection should get a 400 and be closed.</summary>
    Malformed,
}
