using System.Security.Cryptography.X509Certificates;

namespace Isotun.Config;

/// <summary>Disposes every certificate of a collection that was loaded only to be checked.</summary>
internal readonly struct DisposableCollection(X509Certificate2Collection collection) : IDisposable
{
    public void Dispose()
    {
        foreach (var certificate in collection)
        {
            certificate.Dispose();
        }
    }
}
