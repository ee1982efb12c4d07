<?php

/**
 * pam_mfa: a "Verification code" field on Roundcube's login form.
 *
 * Mail servers that use pam_mfa take the password and the code of the
 * authenticator app typed as one string, the code after the password. This
 * plugin lets webmail users type the code in a field of its own: at login it
 * appends the code to the password before Roundcube logs in to IMAP (and
 * with it, later, to SMTP). A login with the field left empty is exactly
 * Roundcube's own: the password (or an app password, or password and code
 * typed joined) goes to the server unchanged.
 *
 * The code is never logged, stored or shown by this plugin. Roundcube keeps
 * the password it logged in with (now ending in the code) in its session, as
 * it always does, and logs in to IMAP again with it on later requests: for
 * that to keep working after the code's 30 seconds, the mail server needs
 * pam_mfa's [webmail] window for this webmail server's address.
 *
 * When the mail server refuses that stored password on a later request (the
 * window ended, `mfa-ctl logout`, a block), Roundcube on its own would keep
 * the session and show "Connection to storage server failed" on every click.
 * This plugin ends the session instead, so the next click shows the login
 * page, where the user types a new code. Only an authentication failure
 * ([AUTHENTICATIONFAILED]) does that; a server that cannot be reached leaves
 * the session alone.
 *
 * @license MIT OR Apache-2.0, as the rest of pam_mfa
 */
class pam_mfa extends rcube_plugin
{
    /** The form field's name (POST) and its element id. */
    const FIELD = '_mfa_code';
    const FIELD_ID = 'rcmloginmfacode';

    /**
     * Loaded for every task (no $task): the login form and the login itself,
     * and the IMAP logins of all later requests (storage_connect).
     */
    public function init()
    {
        $this->add_hook('loginform_content', [$this, 'login_form']);
        $this->add_hook('authenticate', [$this, 'authenticate']);
        $this->add_hook('storage_connect', [$this, 'storage_connect']);
    }

    /**
     * Adds the code field right after the password field.
     */
    public function login_form($args)
    {
        $this->add_texts('localization/');

        $input = html::tag('input', [
            'type'           => 'text',
            'name'           => self::FIELD,
            'id'             => self::FIELD_ID,
            'class'          => 'form-control',
            'size'           => 40,
            'maxlength'      => 32,
            'inputmode'      => 'numeric',
            'autocomplete'   => 'one-time-code',
            'autocapitalize' => 'off',
            'autocorrect'    => 'off',
            'spellcheck'     => 'false',
            'title'          => $this->gettext('hint'),
            // The "elastic" skin shows this icon in front of the field.
            'data-icon'      => 'key',
        ]);
        $row = [
            'title'   => html::label(self::FIELD_ID, html::quote($this->gettext('code'))),
            'content' => $input,
        ];

        $inputs = [];
        foreach ($args['inputs'] as $name => $field) {
            $inputs[$name] = $field;
            if ($name === 'password') {
                $inputs['mfa_code'] = $row;
            }
        }
        if (!isset($inputs['mfa_code'])) {
            // A form without a password row (another plugin's): at the end.
            $inputs['mfa_code'] = $row;
        }
        $args['inputs'] = $inputs;

        return $args;
    }

    /**
     * Appends the typed code to the password. An empty field changes nothing;
     * anything that is neither a code nor a recovery code stops the login
     * here with a message, rather than reaching the server as a wrong password.
     */
    public function authenticate($args)
    {
        $typed = rcube_utils::get_input_string(self::FIELD, rcube_utils::INPUT_POST);
        if (!is_string($typed)) {
            return $args;
        }

        $code = self::normalize($typed);
        if ($code === '') {
            return $args;
        }

        if ($code === null) {
            $this->add_texts('localization/');
            $args['abort'] = true;
            $args['error'] = $this->gettext('invalid');
            return $args;
        }

        if (isset($args['pass']) && is_string($args['pass']) && $args['pass'] !== '') {
            $args['pass'] .= $code;
        }

        return $args;
    }

    /**
     * The code as the mail server expects it after the password: '' for an
     * empty field; 6 to 8 digits (spaces removed) for an authenticator code;
     * a recovery code (12 letters and digits, with or without dashes)
     * lower-cased in its dashed form xxxx-xxxx-xxxx; null for anything else.
     */
    public static function normalize($typed)
    {
        $code = preg_replace('/\s+/u', '', $typed);
        if ($code === null || $code === '') {
            return $code === null ? null : '';
        }
        if (preg_match('/^[0-9]{6,8}$/D', $code)) {
            return $code;
        }
        $plain = strtolower(str_replace('-', '', $code));
        if (preg_match('/^[a-z0-9]{12}$/D', $plain)) {
            return substr($plain, 0, 4) . '-' . substr($plain, 4, 4) . '-' . substr($plain, 8, 4);
        }
        return null;
    }

    /**
     * On a logged-in session's IMAP login: asks Roundcube for a second round
     * of this hook if the login fails, and in that round ends the session when
     * the server refused the credentials.
     */
    public function storage_connect($args)
    {
        $rcmail = rcmail::get_instance();
        if (empty($_SESSION['user_id']) || $rcmail->task == 'login') {
            return $args;
        }

        if ($args['attempt'] == 1) {
            // rcube_imap::connect() calls this hook again only after a failed
            // login, and only when asked to: nothing is retried (below).
            $args['retry'] = true;
            return $args;
        }

        $args['retry'] = false;
        $conn = $rcmail->get_storage()->conn ?? null;
        if (
            $conn instanceof rcube_imap_generic
            && $conn->errornum == rcube_imap_generic::ERROR_NO
            && $conn->resultcode == 'AUTHENTICATIONFAILED'
        ) {
            $this->end_session($rcmail);
        }

        return $args;
    }

    /**
     * Ends the session and sends the browser to the login page, the way
     * Roundcube's index.php handles an invalid session.
     */
    private function end_session($rcmail)
    {
        $rcmail->kill_session();
        $url = $rcmail->url(['_err' => 'session']);

        if ($rcmail->output->ajax_call || $rcmail->output->get_env('framed')) {
            $rcmail->output->command('session_error', $url);
            $rcmail->output->send('iframe');
        }
        else {
            $rcmail->output->redirect(['_err' => 'session']);
        }
        exit;
    }
}
