namespace Isotun.Pki;

/// <summary>A PKI operation failed; <see cref="Error"/> says why.</summary>
public sealed class PkiException(PkiError error, string message) : Exception(message)
{
    public PkiError Error { get; } = error;
}
