"""Staff roles of mini-apps: operators and app admins grant (account, role, unit); the gateway and `user.staff`
read them."""
