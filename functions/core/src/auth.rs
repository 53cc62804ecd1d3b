//! Who is calling. Verification of tokens happens at the edge (API Gateway's JWT
//! authorizer on AWS, or the function itself with a shared secret locally); the domain only
//! sees the resulting principal.

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's `sub` claim: stable user id.
    pub user_id: String,
    /// The token's `name` claim, falling back to the user id.
    pub display_name: String,
}
