"""The developer device login behind `yima-sdk login`: a CLI obtains a developer token without a browser or curl."""
