/**
 * The keys Ubuntu publishes for what cloud-images.ubuntu.com serves: ubuntu-cloudimage-keyring.gpg
 * from Ubuntu's ubuntu-keyring package (2023.11.28.1, noble main), kept here as the binary keyring
 * gpgv reads, in base64. A release's SHA256SUMS must be signed by one of these primary keys.
 * test/unit/image.test.ts checks that the keyring holds exactly these fingerprints.
 */
export const ubuntuCloudImageKeys = {
    fingerprints: [
        // UEC Image Automatic Signing Key <cdimage@ubuntu.com>
        "D2EB44626FDDC30B513D5BB71A5D6C4C7DB87C81",
        // Ubuntu Cloud Image Builder (Canonical Internal Cloud Image Builder)
        "4A3CE3CD565D7EB5C810E2B97FF3F408476CF100",
    ],
    keyringBase64: [
        "mQINBEqwKTUBEAC8V01JGfeYVVlwlcr0dmwF8n+We/lbxwArjR/gZlH7/MJEZnALQHUrDTpD3SkfbsjQgeNt8eS3Jyzoc2r3",
        "t2nos4rXPH4kIzAvtqslz6Ns4ZYjoHVkVC2oV8vYbxER+3/lDjTWVII7omtDVvqH33QlqYZ8+bQbs21lZb2ROJIQCiH0Yzaq",
        "YR0I2SEykBL873V0ygdyW/mCMwniXTLUyGAUV4/28NOzw/6LGvJElJe4UqwQxl/aXtPIJjPka8LA8+nDi5/u6WEgDWgBhLEH",
        "vQG1BNdttm3WCjbu4zS3mNfNBidTamZfOaMJUZVYxhOB5kNQqyR4eYqFK/U+305eLrZ05ocadsmcQWkHQVbgt+g4yyFNl56N",
        "5AirkFjVtfArkUJfINGgJ7gkSeyqTJK24f33vsIpPwRQ5eFn7H4PwGc0Piym73YLJnlR94LNEG0ceOJ7u1r+WuaesIj+lKIZ",
        "sG/rRLf7besaMCCtPcimVgEAmBoIdpTpdP3aa54w/dvfSwW47mGY14G5PBk/0MDy2Y5HOeXat3RXpGZZFh7zbwSQ93RhYH3b",
        "NPNd5lMu3ZRkYX19FWxoLCi5lx4K3flYhiolZ5i4KxJCoGRobsKjm74Xv2QlvCXYyAk5BnAQCsu5hKZ1sOhQADCcKz1Zbg8J",
        "Rc3vmelaJ/VFvHTzs4hJTUvOowARAQABsAwAAGdwZwEAAAAAAAC0NFVFQyBJbWFnZSBBdXRvbWF0aWMgU2lnbmluZyBLZXkg",
        "PGNkaW1hZ2VAdWJ1bnR1LmNvbT6wDAAAZ3BnAgAAAAAAAIkCNwQTAQIAIQIbAwIeAQIXgAUCSrAqJQULCQgHAwUVCgkICwUW",
        "AgMBAAAKCRAaXWxMfbh8gS4nD/4143y4bNueaE/IJrwV0vVgxknaT4mjMXdAhxMh7k/13VrKFFGFwDwLYvBcpNivfZs3vp+E",
        "iwkUSYcamJXKVctonHONf1ZCiPXf6ReLeeETOU5XnWKSlVe8U4KFB2abi9pls2k+tTM0QMVKqmlONv8Ui8S7f56K8jx6OeyI",
        "ISV2wHJoC4RU9H2ZrQ8vXA+CAb7q2RenEbjCV48WZrLJ7TB7BWZeDxAt6Ef1oCQN+zq4zFXo/a/iQPdPb6+Sv1Dvj9oFmDh/",
        "9gpxg5Wk7u9sFKy3+kFeYzMinOvhu38OW0yXfZRPCpth/uM/XvreyDr/aMaI7xErtu3sQ+C1O0o82ZaGJ5pUwrHR8IEiVZ3/",
        "pal6GXlDU/U5pLvFc8AqBMU8KPXsWiVB3jvAAZH7CVZq8uNKL80AB4eNu/ujacYJFhK1aHJ5ueCzyELnGWCa4NPLP2s0cwo5",
        "bGAobGljLxpTGUKOdjLi7xEx1T7UoID+7C3iDpUvvLTtcpEiWOuY/AB2AVeoW/RDo1pqqcd9xl5/AMgj4jLPf6ZnjiNFemDJ",
        "uhwiwMGW/q0UuoHMrfXZVsi1NEC5aZsB0jlSTL9q5zQlLc+qW/Mv6PQDdmePEaR/QvXH7+HQH27WJ+7k3fjN4JOMclEURINs",
        "bg562mBbOnGetP20sutxsU8ov3AnNEuexoLTirAGAANncGcAmQINBFCMc9EBEADDKn9mOi9VZhW+0cxmu3aFZWMg0p7NEKuI",
        "okkEdd6P+BRITccOddDLaBuuamMbt/V1vrxWC5J+UXe33TwgO6KGfH+ECnXD5gYdEOyjVKkUyIzYV5RVU5BMrxTukHuh+Pkc",
        "MVUy5vossCk9MivtCRIqM6eRqfeXv6IBV9MFkAbG3x96ZNI/TqaWTlaHGszz2Axf9JccHCNfb3muLI2uVnUaojtDiZPm9SHT",
        "n6O0p7Tz7M7+P8qyvc6bdn5FYAk+Wbo+zejYVBG/HLLE4+fNZPESGVCWZtbZODBPxppTnNVm3E84CTFtpmWFBvBE/q2G9e8s",
        "5/mP2ATrzLdUKMxr3vcbNX+NY1Uyvn0Z02PjbxThiz1G+4qh6Ct7gprtwXPOB/bCITZL9YLrchwXiNgLLKcGF0XjlpD1hfEL",
        "Gi0aPZaHFLAa6qq8Ro9WSJljY/Z0g3woj6sXpM9TdWe/zaWhxBGmteJl33WBV7a1GucN0zF1dHIvev4Fkrp13Uej3bMWLKUW",
        "CmZ01OHStLASshTqVxIBj2rgsxIcqH66DKTSdZWyBQtgm/kCqBvuoQLFfUgIlGZihTQ96YZXqn+VfBiFbpnh1vLt24CfnVdK",
        "mzibp48KkhfqduDEXxx/f/uZENH7t8xCuNd3p+u1zemGNnxuO8jxS6Ico3bvnJaG4DAl48vaBQARAQABsAwAAGdwZwEAAAAA",
        "AAC0b1VidW50dSBDbG91ZCBJbWFnZSBCdWlsZGVyIChDYW5vbmljYWwgSW50ZXJuYWwgQ2xvdWQgSW1hZ2UgQnVpbGRlcikg",
        "PHVidW50dS1jbG91ZGJ1aWxkZXItbm9yZXBseUBjYW5vbmljYWwuY29tPrAMAABncGcCAAAAAAAAiQI4BBMBAgAiBQJQjHPR",
        "AhsDBgsJCAcDAgYVCAIJCgsEFgIDAQIeAQIXgAAKCRB/8/QIR2zxAL0SEADCxOGTGIi78EqFjwInDPtxSJ2qj9q39WRH9ZOt",
        "e+fxtp/HBt7ytJyBUBPQrrPrcti604IJu/aJ1digRhknCnt4GvpnjrcY+tNVne83XtdCFlGtcJU8T1wcS6OraReLOGsOsVjn",
        "+DhamHz1OHrCm5RWJ9XjCg3ed7N/9dt7vAWasxQvFkjKJGOloAWvob6+Sd6mjU/eVF6NbZDH+uWV4nr3ECfh626dZuabJR4H",
        "eT6s5bpbTVnj8M6ph1139eMyNUCrW3OFI1z0PmufbpWS1XXKb5m48R3WXytDSaUF/o+T1OmzLkN0EzLHLr6x+FuNf83GTxWj",
        "5HSROflXGAy9ewwRVc5JyXgtbszR8UakjEUMvX8zrme9gEaI7y9/nMj0daq6kgnHl9fyqfN/D9vwm3jbycWnbZYsCOq81ICu",
        "5qtQcOS08gaN5i8M0SdPniR3rzacZelaBcrqAN6wnqMhOKJ96GodRogCbee+sVzA6GtRnY92LZ2SLRGl942/WQd4s/VpM2Vp",
        "WbLLHcmTDZqWFd9AMo9whCsrq2BfZcyEFsmLDTwaFzkTYe945ByZi+oNbHTGsQGXkKiqs5127oQW7fJZGxBzCUrcXNiBmWja",
        "UPv9ywsG8AqYVZ0jKvsZd4i4OnNLOLkZ+hRl/vGpJ5nP33qb0Xvm2p7ar4M/kjDyq43nr7AGAANncGcAsAYAA2dwZwA=",
    ].join(""),
} as const;
