namespace Isotun.Pki;

/// <summary>Why a PKI operation failed.</summary>
public enum PkiError
{
    /// <summary>A file that would be written already exists and overwriting was not asked for.</summary>
    Exists,

    /// <summary>The CA certificate or key is missing.</summary>
    MissingCa,

    /// <summary>A name, address or file content given to the operation is not acceptable.</summary>
    BadInput,

    /// <summary>Reading or writing a file failed.</summary>
    Io,
}
